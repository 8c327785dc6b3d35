"""``clgwd sync [--preview]``: sync PBX users now, or show what a sync would change.

After a safety abort: ``clgwd sync missing`` lists the users it held back,
``clgwd sync keep-missing`` keeps them (nothing deleted in the cloud) and
``clgwd sync delete-missing --confirm N`` deletes exactly those N users once (the
same router methods as the Connect step's two buttons, docs/api.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from clgwd.cli.common import (
    NotRunning,
    Subparsers,
    add_socket_args,
    ask_daemon,
    call_command,
    call_daemon,
)
from clgwd.config import DEFAULT_CONFIG_PATH, ConfigError, load_config
from clgwd.errors import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, EXIT_UNAVAILABLE

SYNC_TIMEOUT = 600.0
"""A sync is bounded by the PBX read timeout plus the apply; leave room for both."""


def add_parser(sub: Subparsers) -> None:
    sync = sub.add_parser("sync", help="sync PBX users now, or preview the changes",
                          description="Ask the running daemon to sync PBX users now (the "
                                      "\"Sync Now\" button), or with --preview to read the PBX "
                                      "and show the changes and irregularities without "
                                      "applying them. Without a running daemon, --preview "
                                      "reads the configured source and the state database "
                                      "(read-only) itself; a sync needs the daemon (exit "
                                      "69). Exits 0 on success, 1 when the sync failed or "
                                      "was aborted by a safety rule.")
    add_socket_args(sync)
    sync.add_argument("--preview", action="store_true", help="dry run: show, do not apply")
    sync.add_argument("--json", action="store_true", help="print the raw JSON")
    actions = sync.add_subparsers(dest="sync_action", metavar="ACTION")
    shown = actions.add_parser(
        "missing", help="list the users a safety abort held back",
        description="List the synced users that the last sync found missing from the PBX "
                    "and held back (the safety rule stopped the sync). Exits 0 with a list, "
                    "1 when nothing is held back.")
    shown.add_argument("--offset", type=int, default=0)
    shown.add_argument("--limit", type=int, default=200, help="users to list (1-200)")
    keep = actions.add_parser(
        "keep-missing", help="keep the held-back users: nothing is deleted in the cloud",
        description="The users the safety rule held back stop counting as synced: the "
                    "next reads are the new baseline and nothing is deleted in the cloud. "
                    "The next sync runs at once.")
    keep.add_argument("--set", dest="set_id", help="the set id `clgwd sync missing` showed "
                                                  "(refused if the set changed since)")
    delete = actions.add_parser(
        "delete-missing", help="delete the held-back users once (type their number)",
        description="Run one sync that deletes exactly the users the safety rule held "
                    "back, in the cloud too. --confirm must be their number; a fresh read "
                    "must find exactly the same users missing, otherwise nothing is deleted.")
    delete.add_argument("--confirm", type=int, required=True, metavar="N",
                        help="the number of users to delete, as `clgwd sync missing` shows")
    delete.add_argument("--set", dest="set_id", help="the set id `clgwd sync missing` "
                                                    "showed (default: the set held now)")
    for parser in (shown, keep, delete):
        # Also accepted after the action; SUPPRESS keeps a value given before it.
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--socket", type=Path, default=argparse.SUPPRESS,
                           help="control socket (default: from the config)")
        group.add_argument("--config", "-c", type=Path, default=argparse.SUPPRESS,
                           help="read the control socket path from this config file")
        parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                            help="print the raw JSON")


def run(args: argparse.Namespace) -> int:
    action = getattr(args, "sync_action", None)
    if action is not None:
        return _run_missing(args, action)
    if not args.preview:
        answer = call_daemon(args, "POST", "/v1/command/sync.now", SYNC_TIMEOUT)
    else:
        try:
            answer = ask_daemon(args, "POST", "/v1/command/sync.preview", SYNC_TIMEOUT)
        except NotRunning as err:
            print(f"clgwd is not running ({err}); previewing from the config and the "
                  "state database, read-only", file=sys.stderr)
            return _preview_without_daemon(args)
    if answer is None:
        return EXIT_UNAVAILABLE
    return _report_sync(args, *answer)


def _preview_without_daemon(args: argparse.Namespace) -> int:
    from clgwd.cli.sync_offline import preview_without_daemon  # noqa: PLC0415
    from clgwd.errors import ClgwdError  # noqa: PLC0415

    try:
        config = load_config(args.config or DEFAULT_CONFIG_PATH)
    except ConfigError as err:
        print(err.render(), file=sys.stderr)
        return EXIT_CONFIG
    try:
        outcome = asyncio.run(preview_without_daemon(config, actor="local:cli"))
    except ClgwdError as err:
        print(f"preview failed: {err.message}", file=sys.stderr)
        return EXIT_FAILURE
    return _report_sync(args, 200, outcome.as_json())


def _report_sync(args: argparse.Namespace, status: int, body: Any) -> int:
    if args.json:
        print(json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False))
    if status != 200:
        print(f"sync refused: {body.get('message', body)}", file=sys.stderr)
        return EXIT_FAILURE
    if not args.json:
        print(format_sync_result(body))
    return EXIT_OK if body.get("result") in {"ok", "preview"} else EXIT_FAILURE


def format_sync_result(body: dict[str, Any]) -> str:
    """The Connect-step style report for a terminal."""
    counts, irr = body.get("counts", {}), body.get("irregularities", {})
    lines = [f"sync {body.get('result')} in {body.get('duration', 0):.2f} s"
             + (f": {body['error']}" if body.get("error") else "")]
    if counts:
        lines.append(f"  Number of users: {counts.get('read', 0)}   DDI (DID) number: "
                     f"{body.get('dids', 0)}")
        verb = "would be" if body.get("result") == "preview" else ""
        lines.append(f"  {verb + ' ' if verb else ''}created {counts.get('created', 0)}, "
                     f"updated {counts.get('updated', 0)} (moves {counts.get('moved', 0)}), "
                     f"deleted {counts.get('deleted', 0)}, unchanged "
                     f"{counts.get('unchanged', 0)}, absent (pending delete) "
                     f"{counts.get('absent_pending_delete', 0)}")
    if irr:
        lines.append(f"  Irregularities: {irr.get('summary', 'none')}")
        lines.append(f"  {irr.get('invalid_client_usernames_text', '')}")
        if irr.get("no_email_count") or irr.get("duplicate_email_count"):
            lines.append("  Users with email problems are " + (
                "held back (not synced)" if irr.get("email_policy") == "hold_back" else
                "synced and flagged (they may have issues registering)")
                + " (sync.email_problems)")
        for title, key in (("without an email address", "no_email"),
                           ("without a unique email address", "duplicate_email")):
            for user in irr.get(key, [])[:20]:
                lines.append(f"    {title}: {user.get('extension')} {user.get('name')} "
                             f"<{user.get('email')}>")
    held = body.get("safety_abort")
    if held:
        lines.append(f"  Stopped by the safety rule: {held['count']} synced users are "
                     "missing and held back; list them with `clgwd sync missing`, then "
                     "`clgwd sync keep-missing` or `clgwd sync delete-missing --confirm "
                     f"{held['count']}`")
    for change in body.get("changes", [])[:50]:
        user = change.get("user") or {}
        lines.append(f"  {change['op']:<6} {change['source_key']} {user.get('extension', '')} "
                     f"{user.get('display_name', '')} {','.join(change.get('changed', []))}")
    return "\n".join(lines)


def _run_missing(args: argparse.Namespace, action: str) -> int:
    if action == "missing":
        code, body = call_command(args, "sync.missing.get",
                                  {"offset": args.offset, "limit": args.limit})
        if body is None:
            return code
        if args.json:
            print(json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False))
        else:
            print(format_missing(body))
        return EXIT_OK if body.get("pending") else EXIT_FAILURE
    if action == "keep-missing":
        code, body = call_command(args, "sync.missing.keep",
                                  {"set_id": args.set_id} if args.set_id else {})
        if body is not None:
            print(f"kept {body['kept']} users in the cloud (not deleted); the next sync runs "
                  "now with the PBX as it is")
        return code
    set_id = args.set_id
    if set_id is None:  # the set held now; the fresh read still has to match it
        code, held = call_command(args, "sync.missing.get", {"limit": 1})
        if held is None:
            return code
        if not held.get("pending"):
            print("no sync is waiting for a decision about missing users", file=sys.stderr)
            return EXIT_FAILURE
        set_id = held["set_id"]
    answer = call_daemon(args, "POST", "/v1/command/sync.missing.delete", SYNC_TIMEOUT,
                         body={"set_id": set_id, "confirm": args.confirm})
    if answer is None:
        return EXIT_UNAVAILABLE
    return _report_sync(args, *answer)


def format_missing(body: dict[str, Any]) -> str:
    if not body.get("pending"):
        return "no users are held back: the last sync was not stopped by the safety rule"
    lines = [f"{body['count']} of {body['active']} synced users are missing from the PBX "
             f"and held back (set {body['set_id']}):", f"  {body['reason']}"]
    for user in body.get("users", []):
        lines.append(f"  {user['source_key']:<24} {user['extension']:<8} {user['name']} "
                     f"<{user['email']}>")
    shown = body.get("offset", 0) + len(body.get("users", []))
    if shown < body["count"]:
        lines.append(f"  ... {body['count'] - shown} more (--offset {shown})")
    lines.append(f"Keep them (nothing deleted in the cloud): clgwd sync keep-missing --set "
                 f"{body['set_id']}")
    lines.append(f"Delete them once: clgwd sync delete-missing --set {body['set_id']} "
                 f"--confirm {body['count']}")
    return "\n".join(lines)
