"""``clgwd trunk list|add|remove|check``: the SIP trunks of the running daemon.

Each action is one ``sip.trunks.*`` command on the control socket (actor
``local:cli``), the same methods the onboarding page and the cloud call.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from pathlib import Path
from typing import Any

from clgwd.cli.common import Subparsers, add_socket_args, call_command
from clgwd.errors import EXIT_FAILURE, EXIT_OK


def add_parser(sub: Subparsers) -> None:
    trunk = sub.add_parser("trunk", help="list, add, remove or check SIP trunks",
                           description="Manage the SIP trunks the running daemon checks "
                                       "with OPTIONS.")
    actions = trunk.add_subparsers(dest="trunk_action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="show every trunk and its state")
    add_socket_args(listing)
    listing.add_argument("--json", action="store_true",
                         help="print a JSON array (name, state, rtt_ms, reason, ...)")
    add = actions.add_parser("add", help="add a trunk (or --replace an existing one)")
    add_socket_args(add)
    add.add_argument("name", help="unique trunk name (letters, digits, . _ -)")
    add.add_argument("--host", required=True, help="FQDN or IP address of the peer")
    add.add_argument("--port", type=int, default=None,
                     help="default 5060 (udp/tcp) or 5061 (tls)")
    add.add_argument("--transport", choices=["udp", "tcp", "tls"], default="udp")
    add.add_argument("--secondary-host", default=None,
                     help="resilient peer checked when --host does not answer")
    add.add_argument("--server-name", default=None,
                     help="TLS: name the certificate must carry (default: --host)")
    add.add_argument("--ca", type=Path, default=None,
                     help="TLS: PEM CA bundle to trust instead of the system store")
    add.add_argument("--allow-self-signed", action="store_true",
                     help="TLS: accept a self-signed certificate (name and dates checked)")
    add.add_argument("--interval", type=float, default=None,
                     help="seconds between OPTIONS (1-3600; default from the config, 30)")
    add.add_argument("--timeout", type=float, default=None,
                     help="seconds to wait for an answer (default from the config, 5)")
    add.add_argument("--pbx", default=None, help="the PBX this trunk belongs to")
    add.add_argument("--pbx-family", choices=["mivb", "mx-one", "mv5000", "mvo400",
                                              "other"], default=None)
    add.add_argument("--username", default=None, help="digest username")
    add.add_argument("--password-file", type=Path, default=None,
                     help="read the digest password from this file ('-' = stdin; "
                          "default: prompt when --username is given)")
    add.add_argument("--replace", action="store_true", help="change an existing trunk")
    add.add_argument("--json", action="store_true", help="print the raw JSON")
    for action, text in (("remove", "remove a trunk"), ("check", "check a trunk now")):
        parser = actions.add_parser(action, help=text)
        add_socket_args(parser)
        parser.add_argument("name", help="trunk name")
        parser.add_argument("--json", action="store_true", help="print the raw JSON")


def _password(args: argparse.Namespace) -> str | None:
    if args.username is None:
        return None
    if args.password_file is None:
        return getpass.getpass(f"Digest password for {args.username}: ")
    if str(args.password_file) == "-":
        return sys.stdin.readline().rstrip("\n")
    return str(args.password_file.read_text(encoding="utf-8").strip())


def _trunk_params(args: argparse.Namespace) -> dict[str, Any]:
    trunk: dict[str, Any] = {"name": args.name, "host": args.host,
                             "transport": args.transport}
    optional = {"port": args.port, "server_name": args.server_name,
                "secondary_host": args.secondary_host,
                "ca_file": str(args.ca.resolve()) if args.ca else None,
                "interval": args.interval, "timeout": args.timeout, "pbx": args.pbx,
                "pbx_family": args.pbx_family, "username": args.username,
                "password": _password(args)}
    trunk.update({k: v for k, v in optional.items() if v is not None})
    if args.allow_self_signed:
        trunk["allow_self_signed"] = True
    return {"trunk": trunk, "replace": args.replace}


def run(args: argparse.Namespace) -> int:
    action = args.trunk_action
    if action == "list":
        return _list(args)
    if action == "add":
        try:
            params = _trunk_params(args)
        except OSError as err:
            print(f"cannot read the password file: {err}", file=sys.stderr)
            return EXIT_FAILURE
        code, body = call_command(args, "sip.trunks.set", params)
    elif action == "remove":
        code, body = call_command(args, "sip.trunks.set", {"remove": args.name})
    else:
        code, body = call_command(args, "sip.trunks.check", {"name": args.name})
    if body is None:
        return code
    if args.json:
        print(json.dumps(body, indent=2, sort_keys=True))
    elif action == "remove":
        print(f"trunk {args.name} removed")
    else:
        print_trunks([body])
    if action == "check" and body.get("state") == "down":
        return EXIT_FAILURE
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    code, body = call_command(args, "sip.trunks.get")
    if body is None:
        return code
    trunks = body["trunks"]
    if args.json:
        print(json.dumps(trunks, indent=2, sort_keys=True))
    else:
        print_trunks(trunks)
    return EXIT_OK


def print_trunks(trunks: list[dict[str, Any]]) -> None:
    if not trunks:
        print("no SIP trunks configured")
        return
    print(f"{'TRUNK':<20} {'STATE':<8} {'RTT':>9}  {'TARGET':<28} {'SINCE':<20} REASON")
    for t in trunks:
        rtt = f"{t['rtt_ms']:.1f} ms" if t.get("rtt_ms") is not None else "-"
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t["since"])) \
            if t.get("since") else "-"
        target = f"{t['transport']}:{t['target']}"
        reason = t["reason"] + (f" ({t['note']})" if t.get("note") else "")
        print(f"{t['name']:<20} {t['state']:<8} {rtt:>9}  {target:<28} {since:<20} {reason}")
