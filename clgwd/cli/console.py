"""``clgwd console-banner``: keep the appliance's console banner (/run/issue) current.

Run as root (the setup code is read from the state dir, like ``clgwd setup-code``) by
``clgwd-console.service`` on the appliance image. The CLI imports the daemon's parts
only in the commands that need them, so the banner does not wait for the daemon to
load. The text itself is rendered by ``clgwd.appliance.console`` (pure); this module
gathers the facts (addresses from ``ip``, the rest from the state dir). With
``--watch`` it redraws the banner whenever ``ip monitor`` reports an address change on
a managed port, and every few seconds for the onboarding state (first start, password
set, factory reset); agetty is told to redraw only when the text changed.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import select
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Final

from clgwd.appliance.console import IpAddress, OnboardingFacts, render_issue
from clgwd.cli.common import Subparsers, add_config_arg
from clgwd.cli.setup_code_info import read_setup_info
from clgwd.config import ClgwdConfig, ConfigError, load_config
from clgwd.errors import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK
from clgwd.store.db import DB_FILENAME

POLL_SECONDS: Final = 3.0
HOSTNAME_SETTING: Final = "mdns.hostname"


def add_parser(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "console-banner", help="write the appliance's console banner (agetty issue file)",
        description="Write the onboarding URL (by name and IP), the certificate fingerprint "
                    "and the setup code (while no admin password is set) to an agetty "
                    "issue file. Reads the state dir (needs root).")
    add_config_arg(parser)
    parser.add_argument("--output", type=Path, default=None,
                        help="issue file to write (default: print to stdout)")
    parser.add_argument("--watch", action="store_true",
                        help="keep running; rewrite it when addresses or the onboarding "
                             "state change, and ask agetty to redraw")


def port_addresses(port_names: list[str]) -> list[IpAddress]:
    """The global IPv4/IPv6 addresses of the managed ports, from ``ip -j address``."""
    try:
        out = subprocess.run(["ip", "-j", "address", "show"], capture_output=True,
                             text=True, timeout=10, check=True).stdout
        links = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        return []
    found: list[IpAddress] = []
    for link in links:
        if link.get("ifname") not in port_names:
            continue
        for info in link.get("addr_info", []):
            if info.get("scope") == "global":
                with contextlib.suppress(ValueError):
                    found.append(ipaddress.ip_address(info.get("local", "")))
    return found


def onboarding_facts(state_dir: Path) -> OnboardingFacts:
    """The setup code, password state, fingerprint and mDNS name; empty when unreadable
    (before the first start, or while a factory reset is wiping the state dir)."""
    try:
        info = read_setup_info(state_dir)
        hostname = _persisted_hostname(state_dir)
    except (OSError, sqlite3.Error, ValueError):
        return OnboardingFacts()
    return OnboardingFacts(setup_code=info.code, password_set=info.password_set,
                           fingerprint=info.fingerprint, hostname=hostname)


def _persisted_hostname(state_dir: Path) -> str | None:
    db_path = state_dir / DB_FILENAME
    if not db_path.exists():
        return None
    conn = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT value FROM settings WHERE key = ?",
                           (HOSTNAME_SETTING,)).fetchone()
    finally:
        conn.close()
    value = json.loads(row[0]) if row is not None else None
    return value if isinstance(value, str) else None


def current_issue(config: ClgwdConfig) -> str:
    names = [port.name for port in config.network.ports]
    return render_issue(config, port_addresses(names), onboarding_facts(config.state.dir))


def write_issue(path: Path, text: str) -> None:
    """Atomically, world-readable (agetty reads it before anyone logs in)."""
    fd, tmp = tempfile.mkstemp(prefix=".issue.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _redraw_gettys() -> None:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(["agetty", "--reload"], capture_output=True, timeout=10, check=False)


def _watch(config: ClgwdConfig, output: Path) -> int:
    monitor = subprocess.Popen(["ip", "-o", "monitor", "address"], stdout=subprocess.PIPE,
                               stdin=subprocess.DEVNULL)
    assert monitor.stdout is not None
    last = None
    try:
        while True:
            text = current_issue(config)
            if text != last:
                write_issue(output, text)
                _redraw_gettys()
                last = text
            ready, _, _ = select.select([monitor.stdout], [], [], POLL_SECONDS)
            if ready:
                if not os.read(monitor.stdout.fileno(), 65536):
                    print("ip monitor stopped", file=sys.stderr)
                    return EXIT_FAILURE
                time.sleep(0.2)  # let a burst of address events settle into one redraw
    finally:
        monitor.terminate()
        monitor.wait(timeout=5)


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as err:
        print(err.render(), file=sys.stderr)
        return EXIT_CONFIG
    if args.output is None:
        print(current_issue(config), end="")
        return EXIT_OK
    if args.watch:
        return _watch(config, args.output)
    write_issue(args.output, current_issue(config))
    return EXIT_OK

