#!/usr/bin/env bash
# Sets up the project and runs an offline investigation of a bundled world on embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
world=${1:-examples/worlds/demo-flag-rollout}
shift || true
exec .venv/bin/pm investigate --world "$world" "$@"
