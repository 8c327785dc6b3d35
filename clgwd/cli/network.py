"""``clgwd preflight [--local]`` and ``clgwd network confirm``: the LAN side."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from clgwd.cli.common import Subparsers, add_socket_args, call_command
from clgwd.config import DEFAULT_CONFIG_PATH, ConfigError, load_config
from clgwd.errors import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, EXIT_UNAVAILABLE


def add_parser(sub: Subparsers) -> None:
    preflight = sub.add_parser("preflight", help="check that this network reaches the cloud",
                               description="Run the pre-flight checks (DNS, NTP, cloud 443, "
                                           "STUN, SIP-TLS 5061, PBX, proxy) in the running "
                                           "daemon, or with --local in this process. Exits 0 "
                                           "when every check passes, 1 otherwise.")
    add_socket_args(preflight)
    preflight.add_argument("--local", action="store_true",
                           help="run the checks here from the config file, without the daemon")
    preflight.add_argument("--json", action="store_true", help="print the raw JSON")

    network = sub.add_parser("network", help="network port commands",
                             description="Commands for the Ethernet port configuration.")
    network_sub = network.add_subparsers(dest="network_command", required=True,
                                         metavar="SUBCOMMAND")
    confirm = network_sub.add_parser(
        "confirm", help="keep a network change that is waiting for confirmation",
        description="Confirm the port configuration on trial; without it the previous "
                    "configuration comes back when the confirm timeout ends.")
    add_socket_args(confirm)


def cmd_preflight(args: argparse.Namespace) -> int:
    from clgwd.net.preflight import local_targets, render_report, run_preflight  # noqa: PLC0415

    if args.local:
        try:
            config = load_config(args.config or DEFAULT_CONFIG_PATH)
        except ConfigError as err:
            print(err.render(), file=sys.stderr)
            return EXIT_CONFIG

        async def local() -> dict[str, Any]:
            return await run_preflight(config.network, await local_targets(config))

        report = asyncio.run(local())
    else:
        code, report = call_command(args, "network.preflight")
        if report is None:
            if code == EXIT_UNAVAILABLE:
                print("(clgwd preflight --local runs the checks without the daemon)",
                      file=sys.stderr)
            return code
    print(json.dumps(report, indent=2) if args.json else render_report(report))
    return EXIT_OK if report["ok"] else EXIT_FAILURE


def cmd_network(args: argparse.Namespace) -> int:
    code, result = call_command(args, "network.confirm")
    if result is not None:
        print("network change confirmed")
    return code
