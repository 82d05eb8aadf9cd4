#!/usr/bin/env bash
# Sets up the project, makes sure its servers run, then lints and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/ensure-embeddings.sh >/dev/null
bash scripts/services.sh
bash scripts/ensure-prometheus.sh
bash scripts/ensure-helm.sh
bash scripts/ensure-chromium.sh
bash scripts/ensure-openbao.sh >/dev/null
.venv/bin/ruff check .
.venv/bin/lint-imports
.venv/bin/mypy bot commands pipeline agents publishers store sandbox sources drill
.venv/bin/python -m pytest -q "$@"
