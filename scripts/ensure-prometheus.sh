#!/usr/bin/env bash
# Makes sure Debian's prometheus (with promtool) and prometheus-alertmanager are installed: the real-source
# tests, the parity bench and the drill run them on loopback.
set -euo pipefail
exec bash "$(dirname "$0")/apt-ensure.sh" ensure-prometheus "prometheus promtool prometheus-alertmanager" \
  prometheus prometheus-alertmanager
