#!/usr/bin/env bash
# Makes sure Debian's chromium is installed (the report page is checked in headless Chromium).
# Idempotent and quiet: does nothing when the binary is already on PATH.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-chromium: apt-get not found; install Chromium and put chromium on PATH" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    echo "ensure-chromium: run as root (or install sudo) to apt-get install chromium" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Output is kept and shown only on failure, so a normal run stays quiet.
if ! { $SUDO apt-get -qq update && $SUDO apt-get -qq install -y --no-install-recommends chromium fonts-dejavu-core; } \
    >"$log" 2>&1; then
  cat "$log" >&2
  echo "ensure-chromium: apt-get install chromium failed (see above)" >&2
  exit 1
fi
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]
