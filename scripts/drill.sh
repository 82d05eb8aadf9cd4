#!/usr/bin/env bash
# The live drill (issue #16): a real shop on loopback breaks, Prometheus alerts through Alertmanager,
# `pm serve` investigates and names the culprit. Sets up .venv, installs Prometheus and Alertmanager
# when missing (Debian packages), then runs drill/run.py: one fault or all, each on a fresh stack
# that is stopped afterwards (process groups; also on Ctrl-C or failure).
#   bash scripts/drill.sh [bad-deploy|flag-flip|config-change|third-party|capacity|decoys|all] [--json]
#        [--runs N] [--slack] [--keep]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/ensure-prometheus.sh
exec .venv/bin/python -m drill.run "$@"
