#!/usr/bin/env bash
# Install everything the tests need on Debian 12 and run the whole suite.
#   sudo scripts/test.sh              # everything (CI runs this)
#   scripts/test.sh -m "not peers"    # extra arguments go to pytest
# As root it installs the Debian packages in tests/debian-packages.txt (real peers such
# as MariaDB and slapd are started by the tests themselves, never as services).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=$(sed -e 's/#.*//' tests/debian-packages.txt | tr -s ' \n' ' ')
if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    # Never let package installs start daemons (avahi, mariadb, ...) on this host.
    if [ ! -x /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod +x /usr/sbin/policy-rc.d
    fi
    missing=""
    for pkg in $packages; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
            || missing="$missing $pkg"
    done
    # The accessibility tests fetch axe-core with npm; a machine that already has a
    # Node.js toolchain keeps it, a fresh Debian 12 gets Debian's.
    command -v npm >/dev/null 2>&1 || missing="$missing npm"
    if [ -n "$missing" ]; then
        echo "test.sh: installing Debian packages:$missing"
        apt-get update -qq
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends -o DPkg::Lock::Timeout=300 $missing
    fi
else
    echo "test.sh: not root; skipping Debian packages (peer and netns tests will skip)" >&2
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

echo "== ruff"; .venv/bin/ruff check .
echo "== mypy"; .venv/bin/mypy
echo "== pytest"
exec .venv/bin/python -m pytest "$@"
