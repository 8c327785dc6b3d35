"""``clgwd factory-reset`` and ``clgwd setup-code``: the appliance itself."""

from __future__ import annotations

import argparse
import sqlite3
import sys

from clgwd.cli.common import Subparsers, add_config_arg, add_socket_args, call_command
from clgwd.config import ConfigError, load_config
from clgwd.errors import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, EXIT_UNAVAILABLE


def add_parser(sub: Subparsers) -> None:
    reset = sub.add_parser(
        "factory-reset", help="erase every setting and secret, then restart clgwd",
        description="Reset the gateway to factory defaults: the admin password, site, PBX "
                    "settings, sync state, cloud enrollment and network changes are erased "
                    "and the daemon restarts. The config file is kept.")
    add_socket_args(reset)
    reset.add_argument("--confirm", required=True, metavar="WORD",
                       help="type revert to confirm")

    setup = sub.add_parser("setup-code", help="print the onboarding page's setup code",
                           description="Print the setup code the technician enters on the "
                                       "first visit of the onboarding page, and the HTTPS "
                                       "certificate fingerprint. Reads the state dir "
                                       "(needs root).")
    add_config_arg(setup)


def cmd_factory_reset(args: argparse.Namespace) -> int:
    code, result = call_command(args, "system.factory_reset", {"confirm": args.confirm})
    if result is not None:
        print(f"factory reset committed; clgwd restarts in {result['restart_in_s']:g} s "
              "and starts from defaults (a new setup code is printed in the journal)")
    return code


def cmd_setup_code(args: argparse.Namespace) -> int:
    from clgwd.cli.setup_code_info import read_setup_info  # noqa: PLC0415 - this command only

    try:
        state_dir = load_config(args.config).state.dir
        info = read_setup_info(state_dir)
    except ConfigError as err:
        print(err.render(), file=sys.stderr)
        return EXIT_CONFIG
    except (OSError, sqlite3.Error) as err:
        print(f"cannot read the state dir: {err}", file=sys.stderr)
        return EXIT_FAILURE
    if info.code is None:
        print(f"no setup code yet in {state_dir}: start clgwd once", file=sys.stderr)
        return EXIT_UNAVAILABLE
    print(f"Setup code: {info.code}")
    if info.password_set:
        print("(already used: the admin password is set)")
    if info.fingerprint:
        print(f"HTTPS certificate SHA-256 fingerprint: {info.fingerprint}")
    return EXIT_OK
