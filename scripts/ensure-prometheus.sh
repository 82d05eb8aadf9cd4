#!/usr/bin/env bash
# Makes sure Debian's prometheus (with promtool) and prometheus-alertmanager are installed: the real-source
# tests and the parity bench run them on loopback. Idempotent and quiet: does nothing when both are there.
set -euo pipefail
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/bin/$1" ]; }
if have prometheus && have promtool && have prometheus-alertmanager; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-prometheus: apt-get not found; install Prometheus 2.x (with promtool) and Alertmanager and put them on PATH" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    echo "ensure-prometheus: run as root (or install sudo) to apt-get install prometheus prometheus-alertmanager" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { $SUDO apt-get -qq update && $SUDO apt-get -qq install -y --no-install-recommends prometheus prometheus-alertmanager; } \
    >"$log" 2>&1; then
  cat "$log" >&2
  echo "ensure-prometheus: apt-get install prometheus prometheus-alertmanager failed (see above)" >&2
  exit 1
fi
have prometheus && have promtool && have prometheus-alertmanager
