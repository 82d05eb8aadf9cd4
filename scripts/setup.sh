#!/usr/bin/env bash
# Creates .venv and installs the project with the pinned versions of requirements.lock.
# Idempotent: a second run installs nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "setup: Python 3.11+ is needed (found $("$PY" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.pm-installed
want="$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -c requirements.lock -e ".[dev]"
  echo "$want" > "$stamp"
fi
bash scripts/ensure-embeddings.sh >/dev/null || echo "setup: the embedding model could not be fetched; the knowledge base stays off until scripts/ensure-embeddings.sh succeeds" >&2
# Byte-compile our modules once (quietly, ignoring failures): where PYTHONDONTWRITEBYTECODE is set, every
# `pm` run would otherwise compile them again (~0.2 s of each cold start). A stale .pyc is simply ignored.
.venv/bin/python -m compileall -q -j 0 bot commands pipeline agents publishers store sandbox sources drill >/dev/null 2>&1 || true
