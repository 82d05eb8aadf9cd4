#!/usr/bin/env bash
# Makes sure Debian's prometheus-alertmanager binary is installed (the webhook end-to-end test runs it).
# Kept for older callers: scripts/ensure-prometheus.sh installs Prometheus and Alertmanager together.
set -euo pipefail
exec bash "$(dirname "$0")/ensure-prometheus.sh"
