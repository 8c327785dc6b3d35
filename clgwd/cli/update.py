"""``clgwd update status|check|apply|pause|resume``: the running daemon's updates.

Each action calls ``update.<action>`` on the control socket (the same handler the page
and the cloud use). ``status --json`` prints at least ``current_version``,
``last_update``, ``last_check``, ``next_check`` and ``paused``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any, Final

from clgwd.cli.common import Subparsers, add_socket_args, call_daemon
from clgwd.errors import EXIT_FAILURE, EXIT_OK, EXIT_UNAVAILABLE

CHECK_TIMEOUT: Final = 600
"""Seconds ``update check`` waits: the cloud's answer may follow a reconnect."""
ACTIONS: Final = {
    "status": "show the version, last update, last and next check, pause state",
    "check": "ask the cloud for a newer release now (nothing is installed)",
    "apply": "check, download, install and switch to the newest release now",
    "pause": "pause automatic (scheduled) updates",
    "resume": "resume automatic updates",
}


def add_parser(sub: Subparsers) -> None:
    update = sub.add_parser(
        "update", help="software updates of the running daemon",
        description="Show or control the gateway's software updates (signed releases "
                    "from the cloud, installed in the update window).")
    actions = update.add_subparsers(dest="update_action", required=True, metavar="ACTION")
    for action, text in ACTIONS.items():
        parser = actions.add_parser(action, help=text, description=text[0].upper() + text[1:])
        add_socket_args(parser)
        parser.add_argument("--json", action="store_true", help="print the raw JSON")


def run(args: argparse.Namespace) -> int:
    limit = CHECK_TIMEOUT if args.update_action == "check" else 30
    answer = call_daemon(args, "POST", f"/v1/command/update.{args.update_action}",
                          total_timeout=limit, body={})
    if answer is None:
        return EXIT_UNAVAILABLE
    status, body = answer
    if status != 200:
        message = body.get("message", body) if isinstance(body, dict) else body
        print(f"update {args.update_action} failed: {message}", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        print(json.dumps(body, indent=2, sort_keys=True))
    elif args.update_action == "check":
        release = body.get("release")
        print(f"release {release['version']} is available" if release
              else f"no newer release ({_check_text(body.get('last_check'))})")
    elif args.update_action == "apply":
        print("update started; follow it with: clgwd update status")
    else:
        print(render_status(body))
    return EXIT_OK


def render_status(view: dict[str, Any]) -> str:
    nxt = view.get("next_check")
    lines = [
        f"Current version: {view.get('current_version')} (updates: {view.get('mode')})",
        f"Last update:     {_update_text(view.get('last_update'))}",
        f"Last check:      {_check_text(view.get('last_check'))}",
        f"Next check:      {nxt['local'] if isinstance(nxt, dict) else 'not scheduled'}"
        + (" (paused)" if view.get("paused") else ""),
        f"Automatic:       {'paused' if view.get('paused') else 'on'}",
    ]
    os_update = view.get("last_os_update")
    if isinstance(os_update, dict):
        lines.append(f"OS updates:      {_when(os_update.get('finished_at'))}: "
                     f"{'succeeded' if os_update.get('ok') else 'failed'}")
    if view.get("update_running"):
        lines.append(f"Under way:       {view.get('phase')}")
    trial = view.get("trial")
    if isinstance(trial, dict):
        lines.append(f"On trial:        must be healthy by {_when(trial.get('deadline'))}, "
                     f"else {trial.get('previous')} comes back")
    return "\n".join(lines)


def _when(stamp: object) -> str:
    if not isinstance(stamp, int | float):
        return "?"
    return dt.datetime.fromtimestamp(stamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _update_text(last: object) -> str:
    if not isinstance(last, dict):
        return "never"
    at = last.get("finished_at")
    ok = last.get("ok")
    text = last.get("message") or ("succeeded" if ok else "failed")
    return f"{_when(at)}: {text}"


def _check_text(last: object) -> str:
    if not isinstance(last, dict):
        return "never"
    if not last.get("ok"):
        return f"{_when(last.get('at'))}: failed: {last.get('error')}"
    offered = last.get("offered")
    found = (f"{offered['version']} available" if last.get("available") and offered
             else last.get("note") or "up to date")
    return f"{_when(last.get('at'))}: {found}"
