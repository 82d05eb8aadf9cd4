#!/usr/bin/env bash
# Installs the offline deploy checkers into the test virtualenv (tests/deploy uses them):
#   helm-python-sdk      Helm's own Go SDK (v4) as a shared library: renders and lints charts/production-master
#                        exactly as `helm template` / `helm lint` would (no helm binary is packaged here).
#   kubernetes-validate  the Kubernetes API's JSON schemas (strict variants reject unknown fields).
#   cloudcoil(+models)   the prometheus-operator CRDs as typed models (ServiceMonitor, PrometheusRule).
#   grafana-foundation-sdk  Grafana's dashboard schema as typed models.
# They are test tools, not runtime dependencies: they stay out of requirements.lock and out of the project's
# environment, in their own directory .venv/deploy-tools beside it (pip --target), which only tests/deploy
# puts on sys.path (tests/deploy/conftest.py) — cloudcoil registers a pytest plugin that must not load in
# every pytest run. Versions and wheel hashes are pinned here (linux x86_64). Idempotent and quiet: does
# nothing when all are importable. PM_PYTHON names the interpreter (default: .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PM_PYTHON:-.venv/bin/python}"
if [ ! -x "$PY" ]; then
  echo "ensure-helm: $PY not found; run bash scripts/setup.sh first (or set PM_PYTHON)" >&2
  exit 1
fi
DIR="$(cd "$(dirname "$PY")/.." && pwd)/deploy-tools"
check='import helm_python, kubernetes_validate, importlib_resources, cloudcoil.models.prometheus_operator.v1, grafana_foundation_sdk.models.dashboard'
if PYTHONPATH="$DIR" "$PY" -c "$check" >/dev/null 2>&1; then
  exit 0
fi
req=$(mktemp)
log=$(mktemp)
trap 'rm -f "$req" "$log"' EXIT
cat >"$req" <<'EOF'
helm-python-sdk==0.2.2 --hash=sha256:28cc13abaf134c3a7e37f070c939be8d9cdc9825c3c8b8b2d35161073bcd4578
kubernetes-validate==1.37.0 --hash=sha256:85136d018a27b50ec7fc049d902bfa5193f5976807e6c0f408e3ab6fe078cad9
importlib-resources==7.1.0 --hash=sha256:1bd7b48b4088eddb2cd16382150bb515af0bd2c70128194392725f82ad2c96a1
cloudcoil==0.6.0 --hash=sha256:91793dea2e86ad292af143c5d335ce2e5d27dfbe66fd4b945c2f069224cf7698
cloudcoil-models-prometheus-operator==0.80.1.0 --hash=sha256:a139a60cc0114caace847a34275d7a7cd899ec2dad4120504d8e1cf6a8de0270
grafana-foundation-sdk==1769699998!10.1.0 --hash=sha256:d131ffe49057fb669ba31ce7e28a303c96b3aecf4332b20de33cfa55110d498c
EOF
# --no-deps: their other requirements (PyYAML, jsonschema, referencing, packaging, typing-extensions,
# pydantic, httpx) are the project's own, pinned by requirements.lock; copies here would shadow them.
if ! { rm -rf "$DIR" && "$PY" -m pip install -q --disable-pip-version-check --no-deps --require-hashes \
         --only-binary=:all: --target "$DIR" -r "$req"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "ensure-helm: pip install of the deploy checkers failed (see above); the wheels pinned here are linux x86_64" >&2
  exit 1
fi
PYTHONPATH="$DIR" "$PY" -c "$check"
