"""``clgwd inventory [--json]``: the running daemon's System Inventory document."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from clgwd.cli.common import Subparsers, add_socket_args, call_command
from clgwd.errors import EXIT_OK


def add_parser(sub: Subparsers) -> None:
    parser = sub.add_parser(
        "inventory", help="show the inventory the gateway reports to the cloud",
        description="Ask the running daemon for its System Inventory: this host (memory, "
                    "processor, partitions), the applications, the LAN platforms polled "
                    "over SNMP, and when the report was last and is next submitted.")
    add_socket_args(parser)
    parser.add_argument("--json", action="store_true", help="print the raw JSON")


def run(args: argparse.Namespace) -> int:
    code, body = call_command(args, "inventory.get")
    if code != EXIT_OK:
        return code
    if args.json:
        print(json.dumps(body, indent=2, sort_keys=True, ensure_ascii=False))
    else:
        print(render(body))
    return EXIT_OK


def _when(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at)) if at else "never"


def render(doc: dict[str, Any]) -> str:
    """The terminal view: the vendor's Platforms and Applications columns."""
    host, proc = doc["host"], doc["processor"]
    lines = [f"Inventory Report Submission: Last {_when(doc.get('last_submitted'))}, "
             f"Next {_when(doc.get('next_submission'))}",
             f"Host {host['name']}  platform {host['platform_type']} / {host['platform_name']}"
             f"  family {host['system_family']}  {host['os']} (kernel {host['kernel']})",
             f"Memory {doc['memory']['text']}  Processor {proc['model']} "
             f"({proc['cores']} cores)", "Partitions:"]
    lines += [f"  {p['device']:<24} {p['mount_point']:<20} {p['fs_type']:<8} {p['capacity']}"
              for p in doc["partitions"]]
    lines.append("Applications:")
    lines += [f"  {a['type']:<20} {a['name']:<24} {a.get('version') or '-'}"
              for a in doc["applications"]]
    if doc.get("platforms"):
        lines.append("LAN platforms:")
        lines += [f"  {p['name']:<20} {p['address']:<22} "
                  + (f"{p['platform_type']:<10} {p.get('host') or ''}" if p["reachable"]
                     else f"UNREACHABLE: {p.get('error')}") for p in doc["platforms"]]
    return "\n".join(lines)
