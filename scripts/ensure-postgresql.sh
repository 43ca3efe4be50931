#!/bin/sh
# Installs Debian's PostgreSQL where it is missing, for the storage tests that run on a throwaway
# server the suite starts itself (tests/pg.py: initdb + postgres in a temporary folder).
set -eu
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-postgresql: PostgreSQL is missing and can't be installed here (needs root and apt-get);" \
        "the PostgreSQL half of the storage tests will be skipped." >&2
    exit 0
fi
echo "ensure-postgresql: installing Debian's postgresql for the storage tests" >&2
# One `apt-get update` per test run: skipped when another ensure-*.sh just did it.
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -newermt '-30 min' 2>/dev/null | head -n 1)" ]; then
    apt-get update -qq
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
