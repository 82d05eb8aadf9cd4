#!/usr/bin/env bash
# Makes sure the external Prometheus MCP server (PyPI prometheus-mcp-server, pinned) is installed in its own
# venv, .venv/ext/prometheus-mcp inside the repository: it brings fastmcp and its own mcp release, which must
# not meet ours. Idempotent and quiet; prints the server's executable path (for `command:` in sources.yaml).
set -euo pipefail
VERSION="1.6.2"
FASTMCP="4.2.3"  # pinned too: the server accepts any fastmcp>=3.1, and a new one may change its answers
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PM_PROMETHEUS_MCP_VENV:-$ROOT/.venv/ext/prometheus-mcp}"
EXE="$VENV/bin/prometheus-mcp-server"
# The version file is written last, so a half-finished install is redone rather than trusted.
if [ -x "$EXE" ] && [ "$(cat "$VENV/.pm-version" 2>/dev/null)" = "$VERSION+$FASTMCP" ]; then
  echo "$EXE"
  exit 0
fi
PY="$(command -v python3 || true)"
if [ -z "$PY" ]; then
  echo "ensure-prometheus-mcp: python3 not found; install Python 3.10+ (the server needs it)" >&2
  exit 1
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Output is kept and shown only on failure, so a normal run stays quiet.
if ! { rm -rf "$VENV" && mkdir -p "$(dirname "$VENV")" && "$PY" -m venv "$VENV" \
       && "$VENV/bin/python" -m pip install -q --disable-pip-version-check "prometheus-mcp-server==$VERSION" "fastmcp==$FASTMCP"; } \
     >"$log" 2>&1; then
  cat "$log" >&2
  echo "ensure-prometheus-mcp: could not install prometheus-mcp-server==$VERSION into $VENV (see above);" \
       "check network access to the package index (pip config list)" >&2
  exit 1
fi
if [ ! -x "$EXE" ]; then
  echo "ensure-prometheus-mcp: $EXE missing after install; remove $VENV and run again" >&2
  exit 1
fi
echo "$VERSION+$FASTMCP" >"$VENV/.pm-version"
echo "$EXE"
