#!/usr/bin/env bash
# Install clgwd on a Debian 12 appliance or VM (as root), from this checkout.
#
#   image/install.sh                 # install into /, create the user, enable the service
#   image/install.sh --destdir DIR   # stage the same files under DIR (image builds, tests);
#                                    # no user is created and systemctl is not called
#
# Layout (the release root of docs/updates.md): /opt/clgwd/releases/<version> (virtualenv
# with clgwd), /opt/clgwd/current -> releases/<version>, /etc/clgwd/clgwd.yaml (kept if
# present), /etc/systemd/system/clgwd.service and the rollback units, the rollback
# program in /usr/lib/clgwd, state in /var/lib/clgwd (StateDirectory=).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
destdir=""
if [ "${1:-}" = "--destdir" ]; then
    destdir=$(realpath -m "${2:?--destdir needs a directory}")
fi

prefix="$destdir/opt/clgwd"
python=${PYTHON:-python3}
version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$src/clgwd/__init__.py")
[ -n "$version" ] || { echo "install.sh: no __version__ in $src/clgwd/__init__.py" >&2; exit 1; }
release="$prefix/releases/$version"

if [ -z "$destdir" ]; then
    [ "$(id -u)" = 0 ] || { echo "install.sh: run as root" >&2; exit 1; }
    if ! "$python" -m venv --help >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    fi
    getent group clgwd >/dev/null || groupadd --system clgwd
    # Home /nonexistent, not the state dir: the factory reset refuses to wipe $HOME.
    getent passwd clgwd >/dev/null || useradd --system --gid clgwd --home-dir /nonexistent \
        --no-create-home --shell /usr/sbin/nologin clgwd
fi

"$python" -m venv --clear "$release"
"$release/bin/python" -m pip install -q --disable-pip-version-check "$src[fast]"
# Written last: a release without it is half-built (rollback and updates skip it).
date +%s > "$release/.clgwd-release-complete"
# The link is replaced by a rename, never removed first (docs/updates.md).
ln -sfn "releases/$version" "$prefix/.current.new"
mv -T "$prefix/.current.new" "$prefix/current"

install -d -m 0750 "$destdir/etc/clgwd"
if [ ! -e "$destdir/etc/clgwd/clgwd.yaml" ]; then
    install -m 0640 "$src/clgwd.example.yaml" "$destdir/etc/clgwd/clgwd.yaml"
fi
"$prefix/current/bin/clgwd" check-config "$destdir/etc/clgwd/clgwd.yaml"
for unit in clgwd.service clgwd-rollback.service clgwd-update-deadline.service \
            clgwd-update-deadline.timer; do
    install -D -m 0644 "$src/systemd/$unit" "$destdir/etc/systemd/system/$unit"
done
install -D -m 0755 "$src/clgwd/system/rollback.py" "$destdir/usr/lib/clgwd/clgwd-rollback"

if [ -z "$destdir" ]; then
    chgrp clgwd /etc/clgwd /etc/clgwd/clgwd.yaml
    # The daemon builds new releases here itself (signed updates, docs/updates.md).
    chown -R clgwd:clgwd /opt/clgwd
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload
        systemctl enable --now clgwd.service clgwd-update-deadline.timer
        echo "clgwd installed and started: systemctl status clgwd"
    else
        echo "clgwd installed; systemd is not running here, start it with: systemctl start clgwd"
    fi
else
    echo "clgwd staged under $destdir"
fi
