"""``clgwd inventory [--json]``: the running daemon's System Inventory document."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

from clgwd.cli_support import control_request
from clgwd.config import ConfigError, load_config
from clgwd.config.models import DEFAULT_CONFIG_PATH, DEFAULT_CONTROL_SOCKET

EXIT_OK, EXIT_FAILURE, EXIT_UNAVAILABLE = 0, 1, 69


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "inventory", help="show the inventory the gateway reports to the cloud",
        description="Ask the running daemon for its System Inventory: this host (memory, "
                    "processor, partitions), the applications, the LAN platforms polled "
                    "over SNMP, and when the report was last and is next submitted.")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--socket", type=Path, default=None,
                       help=f"control socket (default: from the config, {DEFAULT_CONTROL_SOCKET})")
    group.add_argument("--config", "-c", type=Path, default=None,
                       help="read the control socket path from this config file")
    parser.add_argument("--json", action="store_true", help="print the raw JSON")


def _socket(args: argparse.Namespace) -> Path:
    if args.socket is not None:
        return Path(args.socket)
    try:
        return load_config(args.config or DEFAULT_CONFIG_PATH).control.socket
    except ConfigError:
        return DEFAULT_CONTROL_SOCKET


def run(args: argparse.Namespace) -> int:
    path = _socket(args)
    try:
        status, body = asyncio.run(control_request(path, "POST", "/v1/command/inventory.get",
                                                   30, {}))
    except (aiohttp.ClientConnectionError, FileNotFoundError, ConnectionRefusedError) as err:
        print(f"clgwd is not running (no answer on {path}: {err})", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except PermissionError:
        print(f"permission denied on {path}: run as root or a member of the clgwd group",
              file=sys.stderr)
        return EXIT_UNAVAILABLE
    if status != 200:
        print(f"inventory failed: {body.get('message', body)}", file=sys.stderr)
        return EXIT_FAILURE
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
