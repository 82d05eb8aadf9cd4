#!/usr/bin/env bash
# Makes sure Debian's prometheus-alertmanager binary is installed (the webhook end-to-end test runs it).
# Idempotent and quiet: does nothing when the binary is already on PATH.
set -euo pipefail
if command -v prometheus-alertmanager >/dev/null 2>&1 || [ -x /usr/bin/prometheus-alertmanager ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-alertmanager: apt-get not found; install Prometheus Alertmanager 0.25+ and put it on PATH" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    echo "ensure-alertmanager: run as root (or install sudo) to apt-get install prometheus-alertmanager" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Output is kept and shown only on failure, so a normal run stays quiet.
if ! { $SUDO apt-get -qq update && $SUDO apt-get -qq install -y --no-install-recommends prometheus-alertmanager; } \
    >"$log" 2>&1; then
  cat "$log" >&2
  echo "ensure-alertmanager: apt-get install prometheus-alertmanager failed (see above)" >&2
  exit 1
fi
command -v prometheus-alertmanager >/dev/null 2>&1 || [ -x /usr/bin/prometheus-alertmanager ]
