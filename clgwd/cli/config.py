"""``clgwd config get [KEY...]`` / ``clgwd config forget KEY...``: settings and sources.

Asks the running daemon (``config.get`` on the control socket, actor ``local:cli``),
so it shows what the daemon uses: the config file's values with what the page and
the cloud saved, each with its source (``default``, ``file``, ``page``, ``cloud``) and
who set it (docs/settings.md). Secrets are shown as ``set``, never their value.
``forget`` drops what was saved for the PBX or the sync interval (``settings.forget``),
the SNMP agent or MQTT (``monitor.forget``) or the inventory
(``inventory.settings.forget``) or the cloud address (``cloud.address.forget``), so
the config file's values apply again.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

from clgwd.cli.common import Subparsers, add_socket_args, call_command
from clgwd.errors import EXIT_OK


def add_parser(sub: Subparsers) -> None:
    config = sub.add_parser(
        "config", help="show the settings in effect and where each came from",
        description="Show the running daemon's settings: the config file's values with "
                    "what the onboarding page and the cloud saved, and each one's source.")
    actions = config.add_subparsers(dest="config_action", required=True, metavar="ACTION")
    get = actions.add_parser("get", help="show settings with their source",
                             description="Show each setting's effective value and source "
                                         "(default, file, page or cloud).")
    get.add_argument("keys", nargs="*", metavar="KEY",
                     help="config keys or sections (pbx.host, sync); default: all")
    get.add_argument("--json", action="store_true", help="print the raw JSON")
    add_socket_args(get)
    forget = actions.add_parser(
        "forget", help="drop saved settings so the config file's apply again",
        description="Forget what the onboarding page or the cloud saved for the PBX "
                    "(pbx), the sync interval (sync.interval_minutes), the SNMP agent "
                    "(monitor.snmp), MQTT (monitor.mqtt), the inventory (inventory) or the "
                    "cloud address and CA typed at enrollment (cloud.url); the config "
                    "file's values apply again at once.")
    forget.add_argument("keys", nargs="+", metavar="KEY",
                        help="pbx, sync.interval_minutes, monitor.snmp, monitor.mqtt, "
                             "inventory or cloud.url")
    add_socket_args(forget)


FORGET_COMMANDS: dict[str, tuple[str, dict[str, Any]]] = {
    "monitor.snmp": ("monitor.forget", {"sections": ["snmp"]}),
    "monitor.mqtt": ("monitor.forget", {"sections": ["mqtt"]}),
    "inventory": ("inventory.settings.forget", {}),
    "cloud.url": ("cloud.address.forget", {}),
}
"""Keys whose saved values another part forgets; the rest go to ``settings.forget``."""


def run(args: argparse.Namespace) -> int:
    if args.config_action == "forget":
        return _forget(args)
    code, body = call_command(args, "config.get", {"keys": args.keys} if args.keys else {})
    if body is None:
        return code
    if args.json:
        print(json.dumps({"settings": body["settings"], "notes": body["notes"]}, indent=2,
                         sort_keys=True))
    else:
        print(render(body["settings"], body["notes"]))
    return EXIT_OK


def render(settings: list[dict[str, Any]], notes: list[str]) -> str:
    """One line per key: key, value, source, and who set it when (page or cloud)."""
    rows = [(e["key"], json.dumps(e["value"]), e["source"], _who(e)) for e in settings]
    width = max([len("KEY"), *(len(r[0]) for r in rows)])
    value_width = min(40, max([len("VALUE"), *(len(r[1]) for r in rows)]))
    lines = [f"{'KEY':<{width}}  {'VALUE':<{value_width}}  {'SOURCE':<7}  SET BY"]
    lines += [f"{k:<{width}}  {v:<{value_width}}  {s:<7}  {w}".rstrip() for k, v, s, w in rows]
    lines += [f"note: {note}" for note in notes]
    return "\n".join(lines)


def _who(entry: dict[str, Any]) -> str:
    if entry["set_by"] is None:
        return ""
    at = entry["set_at"]
    when = "" if at is None else dt.datetime.fromtimestamp(at, dt.UTC).strftime(
        " at %Y-%m-%d %H:%M UTC")
    return f"{entry['set_by']}{when}"


def _forget(args: argparse.Namespace) -> int:
    """One call per owner: ``settings.forget`` for the PBX and the interval, the monitor
    and inventory parts for their sections."""
    calls = [FORGET_COMMANDS[k] for k in dict.fromkeys(args.keys) if k in FORGET_COMMANDS]
    rest = [k for k in args.keys if k not in FORGET_COMMANDS]
    if rest:
        calls.insert(0, ("settings.forget", {"keys": rest}))
    code = EXIT_OK
    for method, params in calls:
        code, body = call_command(args, method, params)
        if body is None:
            return code
        done = body["forgotten"]
        print(f"forgotten: {', '.join(done)}" if done else "nothing was saved for "
              f"{method.removesuffix('.forget')}; the config file's values already apply")
        print(render(body["settings"], []))
    return code
