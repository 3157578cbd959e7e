#!/usr/bin/env bash
# The console's browser tests drive Debian's Chromium (tests/console). Installs it from the
# Debian archive when /usr/bin/chromium is missing: as root, or through sudo. Playwright's
# own browser download is not used (these machines cannot reach it).
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "install_chromium: /usr/bin/chromium is missing and this user cannot install it;" \
         "run: apt-get install chromium" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
/usr/bin/chromium --version
