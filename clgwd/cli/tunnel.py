"""``clgwd tunnel list | start | stop``: the running daemon's reverse tunnels."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from clgwd.cli.common import Subparsers, add_socket_args, call_daemon
from clgwd.errors import EXIT_FAILURE, EXIT_OK, EXIT_UNAVAILABLE


def add_parser(sub: Subparsers) -> None:
    tunnel = sub.add_parser("tunnel", help="list, start or stop reverse tunnels",
                            description="Control the reverse tunnels of the running daemon.")
    actions = tunnel.add_subparsers(dest="tunnel_action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="show every configured tunnel")
    add_socket_args(listing)
    listing.add_argument("--json", action="store_true", help="print the raw JSON")
    for action in ("start", "stop"):
        parser = actions.add_parser(action, help=f"{action} one tunnel or all of them")
        add_socket_args(parser)
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("name", nargs="?", help="tunnel name")
        which.add_argument("--all", action="store_true", help=f"{action} every tunnel")
        if action == "start":
            parser.add_argument("--expiry", type=float, default=None,
                                help="seconds until it stops by itself (default from config)")


def run(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {}
    if args.tunnel_action != "list":
        params = {"all": True} if args.all else {"name": args.name}
        if getattr(args, "expiry", None) is not None:
            params["expiry"] = args.expiry
    answer = call_daemon(args, "POST", f"/v1/command/tunnel.{args.tunnel_action}", body=params)
    if answer is None:
        return EXIT_UNAVAILABLE
    status, body = answer
    if status != 200:
        print(f"tunnel {args.tunnel_action} failed: {body.get('message', body)}",
              file=sys.stderr)
        return EXIT_FAILURE
    tunnels = body["tunnels"]
    if getattr(args, "json", False):
        print(json.dumps(tunnels, indent=2, sort_keys=True))
        return EXIT_OK
    _print_tunnels(tunnels)
    return EXIT_OK


def _print_tunnels(tunnels: list[dict[str, Any]]) -> None:
    if not tunnels:
        print("no tunnels configured")
        return
    print(f"{'TUNNEL':<20} {'STATUS':<8} {'STREAMS':>7} {'BYTES IN':>12} {'BYTES OUT':>12}"
          "  EXPIRES IN  TARGET")
    for t in tunnels:
        expires = f"{t['expires_in']:.0f} s" if t["expires_in"] is not None else "-"
        print(f"{t['name']:<20} {t['status']:<8} {t['streams']:>7} "
              f"{t['bytes_from_cloud']:>12} {t['bytes_to_cloud']:>12}  {expires:>10}  "
              f"{t['host']}:{','.join(str(p) for p in t['ports'])}")
