#!/bin/sh
# Installs Debian's Chromium for the browser tests (tests/web/test_browser_*.py) where it is missing.
# Playwright drives this system browser (executable_path=/usr/bin/chromium): `playwright install`
# downloads browser builds of its own, which is neither needed nor possible offline.
set -eu
CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: $CHROMIUM is missing and can't be installed here (needs root and apt-get);" \
        "the browser tests will be skipped." >&2
    exit 0
fi
echo "ensure-chromium: installing Debian's chromium for the browser tests" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
