#!/usr/bin/env bash
# Makes sure Debian's chromium is installed (the report page is checked in headless Chromium).
set -euo pipefail
exec bash "$(dirname "$0")/apt-ensure.sh" ensure-chromium chromium chromium fonts-dejavu-core
