"""The ``clgwd`` command line: every entry point, one module per command group.

A command group is one module with ``add_parser(sub)`` (its sub-commands and their
arguments) and a function per command taking the parsed ``args`` and returning the exit
status. Adding a group is three lines here: the import, ``add_parser(sub)`` in
``build_parser`` and one entry per command in ``COMMANDS``. Group modules import what
is heavy (the daemon, the refcloud, a PBX driver) inside the command that needs it, so
``clgwd run`` does not pay for the demo and ``clgwd status`` not for the daemon.

| module | commands |
|---|---|
| ``daemon`` | run, check-config, status, reload, version |
| ``sync`` (+ ``sync_offline``) | sync [--preview] (offline preview without the daemon) |
| ``network`` | preflight [--local], network confirm |
| ``tunnel`` | tunnel list / start / stop |
| ``inventory`` | inventory [--json] |
| ``trunk`` | trunk list / add / remove / check (SIP trunks) |
| ``config`` | config get (each setting's value and source) |
| ``system`` (+ ``setup_code_info``) | factory-reset, setup-code |
| ``enroll`` | enroll |
| ``refcloud`` | refcloud (the reference cloud, for development and the demo) |
| ``release`` | release build / verify (signed release bundles, offline) |
| ``update`` | update status / check / apply / pause / resume |
| ``demo`` | demo (everything on localhost) |
| ``console`` | console-banner (the appliance image's console banner, /run/issue) |
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from clgwd.cli import (
    config,
    console,
    daemon,
    demo,
    enroll,
    inventory,
    network,
    refcloud,
    release,
    sync,
    system,
    trunk,
    tunnel,
    update,
)

Command = Callable[[argparse.Namespace], int]

COMMANDS: dict[str, Command] = {
    "run": daemon.cmd_run,
    "check-config": daemon.cmd_check_config,
    "status": daemon.cmd_status,
    "reload": daemon.cmd_reload,
    "version": daemon.cmd_version,
    "sync": sync.run,
    "preflight": network.cmd_preflight,
    "network": network.cmd_network,
    "tunnel": tunnel.run,
    "config": config.run,
    "factory-reset": system.cmd_factory_reset,
    "setup-code": system.cmd_setup_code,
    "enroll": enroll.run,
    "refcloud": refcloud.run,
    "demo": demo.run,
    "inventory": inventory.run,
    "trunk": trunk.run,
    "release": release.run,
    "update": update.run,
    "console-banner": console.run,
}
"""Command name -> handler; each returns the process exit status."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clgwd",
        description="clgwd: gateway between a PBX on the LAN and the cloud platform.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    daemon.add_parser(sub)
    sync.add_parser(sub)
    network.add_parser(sub)
    tunnel.add_parser(sub)
    config.add_parser(sub)
    system.add_parser(sub)
    demo.add_parser(sub)
    enroll.add_parser(sub)
    refcloud.add_parser(sub)
    inventory.add_parser(sub)
    trunk.add_parser(sub)
    release.add_parser(sub)
    update.add_parser(sub)
    console.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Every command; a reader that went away (``clgwd sync | head``) ends it quietly."""
    try:
        try:
            code = _main(argv)
        finally:
            sys.stdout.flush()  # here, not at exit: a closed pipe shows inside the try
    except BrokenPipeError:
        return closed_pipe()
    return code


def closed_pipe() -> int:
    """Point stdout at /dev/null (so the interpreter's last flush cannot fail again)
    and exit as a process killed by SIGPIPE would (128 + 13), without a traceback."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 141


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return 130
