"""Helpers every command group shares: console output, common arguments and the running
daemon's control socket.

Kept light on purpose: ``clgwd run`` imports the whole CLI before it starts the daemon,
so the heavy parts are imported by the command that needs them, when it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeAlias

import aiohttp

from clgwd.config import DEFAULT_CONFIG_PATH, ConfigError, load_config
from clgwd.config.loader import parse_yaml
from clgwd.config.models import DEFAULT_CONTROL_SOCKET
from clgwd.errors import EXIT_FAILURE, EXIT_OK, EXIT_UNAVAILABLE

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What ``add_parser(sub)`` of each command group receives."""


def print_banner(lines: Sequence[str]) -> None:
    """Print a framed block so URLs stand out in a terminal or the journal."""
    width = max(len(line) for line in lines)
    rule = "=" * (width + 4)
    print(rule, file=sys.stdout)
    for line in lines:
        print(f"| {line:<{width}} |", file=sys.stdout)
    print(rule, file=sys.stdout, flush=True)


async def control_request(socket_path: Path, method: str, url: str,
                          total_timeout: float = 30, body: Any = None) -> tuple[int, Any]:
    """One request to the running daemon's control socket: ``(HTTP status, JSON)``."""
    connector = aiohttp.UnixConnector(path=str(socket_path))
    timeout = aiohttp.ClientTimeout(total=total_timeout)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
        session.request(method, f"http://clgwd{url}", json=body) as resp,
    ):
        return resp.status, await resp.json()


def add_config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", type=Path, default=DEFAULT_CONFIG_PATH,
                        help=f"config file (default {DEFAULT_CONFIG_PATH})")


def add_socket_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--socket", type=Path, default=None,
                       help=f"control socket (default: from the config, {DEFAULT_CONTROL_SOCKET})")
    group.add_argument("--config", "-c", type=Path, default=None,
                       help="read the control socket path from this config file")


def control_socket(args: argparse.Namespace) -> Path:
    if args.socket is not None:
        return Path(args.socket)
    path = args.config or DEFAULT_CONFIG_PATH
    try:
        return load_config(path).control.socket
    except ConfigError:
        # An invalid file (e.g. one just edited before "clgwd reload") still names the
        # socket of the daemon that runs on the last good config.
        return _socket_from_raw_config(path) or DEFAULT_CONTROL_SOCKET


def _socket_from_raw_config(path: Path) -> Path | None:
    try:
        data = parse_yaml(path.read_text(encoding="utf-8"), str(path))
    except (OSError, UnicodeDecodeError, ConfigError):
        return None
    control = data.get("control")
    socket = control.get("socket") if isinstance(control, dict) else None
    return Path(socket) if isinstance(socket, str) and socket.startswith("/") else None


class NotRunning(Exception):
    """Nothing answers on the control socket."""


def call_daemon(args: argparse.Namespace, method: str, url: str,
                total_timeout: float = 30, body: Any = None) -> tuple[int, Any] | None:
    try:
        return ask_daemon(args, method, url, total_timeout, body)
    except NotRunning as err:
        print(f"clgwd is not running ({err})", file=sys.stderr)
        return None


def ask_daemon(args: argparse.Namespace, method: str, url: str,
               total_timeout: float = 30, body: Any = None) -> tuple[int, Any] | None:
    """The daemon's answer; None (said on stderr) when it refuses us; ``NotRunning``
    when nothing listens, so a caller can fall back to working without it."""
    socket_path = control_socket(args)
    try:
        return asyncio.run(control_request(socket_path, method, url, total_timeout, body))
    except (aiohttp.ClientConnectionError, FileNotFoundError, ConnectionRefusedError) as err:
        raise NotRunning(f"no answer on {socket_path}: {err}") from err
    except PermissionError:
        print(f"permission denied on {socket_path}: run as root or a member of the clgwd "
              "group", file=sys.stderr)
        return None


def call_command(args: argparse.Namespace, method: str,
                 params: dict[str, Any] | None = None) -> tuple[int, Any]:
    """Run a command-router method in the daemon: (exit code, result or None)."""
    answer = call_daemon(args, "POST", f"/v1/command/{method}", body=params or {})
    if answer is None:
        return EXIT_UNAVAILABLE, None
    status, body = answer
    if status != 200:
        print(body.get("message", body), file=sys.stderr)
        return EXIT_FAILURE, None
    return EXIT_OK, body
