"""``clgwd sync [--preview]``: sync PBX users now, or show what a sync would change."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from clgwd.cli.common import NotRunning, Subparsers, add_socket_args, ask_daemon, call_daemon
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


def run(args: argparse.Namespace) -> int:
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
        for title, key in (("without an email address", "no_email"),
                           ("without a unique email address", "duplicate_email")):
            for user in irr.get(key, [])[:20]:
                lines.append(f"    {title}: {user.get('extension')} {user.get('name')} "
                             f"<{user.get('email')}>")
    for change in body.get("changes", [])[:50]:
        user = change.get("user") or {}
        lines.append(f"  {change['op']:<6} {change['source_key']} {user.get('extension', '')} "
                     f"{user.get('display_name', '')} {','.join(change.get('changed', []))}")
    return "\n".join(lines)
