#!/usr/bin/env bash
# Install clgwd on a Debian 12 appliance or VM (as root), from this checkout.
#
#   image/install.sh                 # install into /, create the user, enable the service
#   image/install.sh --destdir DIR   # stage the same files under DIR (image builds, tests);
#                                    # no user is created and systemctl is not called
#
# Layout: /opt/clgwd/releases/<version> (a virtualenv with clgwd), /opt/clgwd/current ->
# releases/<version> (what the unit runs: /opt/clgwd/current/bin/clgwd; an update adds a
# release beside it and moves the link), /etc/clgwd/clgwd.yaml (kept if present),
# /etc/systemd/system/clgwd.service, state in /var/lib/clgwd (StateDirectory=).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
destdir=""
if [ "${1:-}" = "--destdir" ]; then
    destdir=$(realpath -m "${2:?--destdir needs a directory}")
fi

version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$src/clgwd/__init__.py")
[ -n "$version" ] || { echo "install.sh: cannot read __version__ from clgwd/__init__.py" >&2; exit 1; }
prefix="$destdir/opt/clgwd/releases/$version"
python=${PYTHON:-python3}

if [ -z "$destdir" ]; then
    [ "$(id -u)" = 0 ] || { echo "install.sh: run as root" >&2; exit 1; }
    if ! "$python" -m venv --help >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    fi
    getent group clgwd >/dev/null || groupadd --system clgwd
    getent passwd clgwd >/dev/null || useradd --system --gid clgwd --home-dir /nonexistent \
        --no-create-home --shell /usr/sbin/nologin clgwd
fi

"$python" -m venv --clear "$prefix"
"$prefix/bin/python" -m pip install -q --disable-pip-version-check "$src[fast]"
ln -sfn "releases/$version" "$destdir/opt/clgwd/current.new"
mv -T "$destdir/opt/clgwd/current.new" "$destdir/opt/clgwd/current"

install -d -m 0750 "$destdir/etc/clgwd"
if [ ! -e "$destdir/etc/clgwd/clgwd.yaml" ]; then
    install -m 0640 "$src/clgwd.example.yaml" "$destdir/etc/clgwd/clgwd.yaml"
fi
"$prefix/bin/clgwd" check-config "$destdir/etc/clgwd/clgwd.yaml"
install -D -m 0644 "$src/systemd/clgwd.service" "$destdir/etc/systemd/system/clgwd.service"

if [ -z "$destdir" ]; then
    chgrp clgwd /etc/clgwd /etc/clgwd/clgwd.yaml
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload
        systemctl enable --now clgwd.service
        echo "clgwd installed and started: systemctl status clgwd"
    else
        echo "clgwd installed; systemd is not running here, start it with: systemctl start clgwd"
    fi
else
    echo "clgwd staged under $destdir"
fi
