#!/usr/bin/env bash
# Install Debian's headless Chromium and its WebDriver for the book's browser check
# (tests/browser). Idempotent: does nothing when both binaries are already present.
# Never downloads a browser from anywhere but the distribution's apt repositories
# (Selenium Manager is not used: the tests point at /usr/bin/chromedriver).
set -euo pipefail

if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then
    echo "install_chromium: $(/usr/bin/chromium --version 2>/dev/null || echo chromium) already installed"
    exit 0
fi

SUDO=""
if [[ "$(id -u)" != "0" ]]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "install_chromium: need root (or sudo) to apt-get install chromium chromium-driver" >&2
        exit 1
    fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_chromium: apt-get not found; install Chromium and chromedriver so that" >&2
    echo "  /usr/bin/chromium and /usr/bin/chromedriver exist, then rerun." >&2
    exit 1
fi

echo "install_chromium: installing chromium + chromium-driver with apt-get"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
/usr/bin/chromium --version 2>/dev/null || true
