#!/usr/bin/env bash
# Installs Debian packages unless every named binary is already there (idempotent and quiet).
#   usage: apt-ensure.sh NAME "BINARY ..." PACKAGE ...
# NAME prefixes messages; output of apt-get is shown only on failure.
set -euo pipefail
name=$1 binaries=$2
shift 2
have_all() { for b in $binaries; do command -v "$b" >/dev/null 2>&1 || [ -x "/usr/bin/$b" ] || return 1; done; }
have_all && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "$name: apt-get not found; install $* and put $binaries on PATH" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    echo "$name: run as root (or install sudo) to apt-get install $*" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { $SUDO apt-get -qq update && $SUDO apt-get -qq install -y --no-install-recommends "$@"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "$name: apt-get install $* failed (see above)" >&2
  exit 1
fi
have_all
