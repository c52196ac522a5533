#!/usr/bin/env bash
# Installs Debian's headless-capable Chromium and its WebDriver for the `browser` tests.
# Idempotent: does nothing when /usr/bin/chromium already exists. Needs root (or sudo) on Debian.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "setup_chromium.sh: need root to apt-get install chromium chromium-driver; browser tests will skip" >&2
        exit 0
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends chromium chromium-driver fonts-dejavu-core
