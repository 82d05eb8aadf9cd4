#!/usr/bin/env bash
# Sets up the project, makes sure its servers run, then lints and runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/services.sh
bash scripts/ensure-alertmanager.sh
bash scripts/ensure-prometheus.sh
.venv/bin/ruff check .
.venv/bin/lint-imports
.venv/bin/mypy bot commands pipeline agents publishers store sandbox sources drill
.venv/bin/python -m pytest -q "$@"
