"""The ``clgwd`` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from clgwd import __version__
from clgwd.config import DEFAULT_CONFIG_PATH, ClgwdConfig, ConfigError, load_config
from clgwd.config.loader import parse_yaml
from clgwd.config.models import DEFAULT_CONTROL_SOCKET
from clgwd.daemon import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, Daemon
from clgwd.logsetup import LEVELS, setup_logging

EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: the daemon is not running


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="clgwd",
        description="clgwd: gateway between a PBX on the LAN and the cloud platform.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon in the foreground (systemd's ExecStart)",
                         description="Run the gateway daemon until SIGTERM/SIGINT. "
                                     "SIGHUP reloads the config file.")
    _add_config_arg(run)
    run.add_argument("--log-level", choices=sorted(LEVELS), default=None,
                     help="override logging.level from the config")

    check = sub.add_parser("check-config", help="validate a config file and exit",
                           description="Validate a config file. Exits 0 when valid; "
                                       "otherwise prints every error with its key path and "
                                       "exits 78 (EX_CONFIG).")
    check.add_argument("path", type=Path, nargs="?", default=DEFAULT_CONFIG_PATH,
                       help=f"config file (default {DEFAULT_CONFIG_PATH})")

    status = sub.add_parser("status", help="show the running daemon's component states",
                            description="Ask the running daemon over its control socket "
                                        "for the state of each component.")
    _add_socket_args(status)
    status.add_argument("--json", action="store_true", help="print the raw JSON")

    reload = sub.add_parser("reload", help="ask the running daemon to reload its config",
                            description="Same as SIGHUP, but prints the outcome.")
    _add_socket_args(reload)

    preflight = sub.add_parser("preflight", help="check that this network reaches the cloud",
                               description="Run the pre-flight checks (DNS, NTP, cloud 443, "
                                           "STUN, SIP-TLS 5061, PBX, proxy) in the running "
                                           "daemon, or with --local in this process. Exits 0 "
                                           "when every check passes, 1 otherwise.")
    _add_socket_args(preflight)
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
    _add_socket_args(confirm)

    sub.add_parser("version", help="print the version", description="Print the version.")

    demo = sub.add_parser("demo", help="run everything on localhost for a demonstration",
                          description="Start the daemon with a temporary state dir on "
                                      "unprivileged localhost ports, print the URLs to "
                                      "open, and stop cleanly on Ctrl-C.")
    demo.add_argument("--port", type=int, default=8080, help="HTTP port (default 8080)")
    demo.add_argument("--state-dir", type=Path, default=None,
                      help="keep state here instead of a temporary dir")
    return parser


def _add_config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", type=Path, default=DEFAULT_CONFIG_PATH,
                        help=f"config file (default {DEFAULT_CONFIG_PATH})")


def _add_socket_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--socket", type=Path, default=None,
                       help=f"control socket (default: from the config, {DEFAULT_CONTROL_SOCKET})")
    group.add_argument("--config", "-c", type=Path, default=None,
                       help="read the control socket path from this config file")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {
        "run": cmd_run, "check-config": cmd_check_config, "status": cmd_status,
        "reload": cmd_reload, "version": cmd_version, "demo": cmd_demo,
        "preflight": cmd_preflight, "network": cmd_network,
    }
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        return 130


def cmd_version(args: argparse.Namespace) -> int:
    print(f"clgwd {__version__}")
    return EXIT_OK


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        load_config(args.path)
    except ConfigError as err:
        print(err.render(), file=sys.stderr)
        return EXIT_CONFIG
    print(f"{args.path}: OK")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as err:
        setup_logging(args.log_level or "info")
        print(err.render(), file=sys.stderr)
        return EXIT_CONFIG
    return run_daemon(config, args.config.resolve(), args.log_level)


def run_daemon(config: ClgwdConfig, path: Path | None, log_level: str | None) -> int:
    setup_logging(log_level or config.logging.level)

    async def _main() -> int:
        return await Daemon(config, path, log_level_override=log_level).run()

    return asyncio.run(_main())


def _control_socket(args: argparse.Namespace) -> Path:
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


async def _control_request(socket_path: Path, method: str, url: str,
                           body: Any = None) -> tuple[int, Any]:
    connector = aiohttp.UnixConnector(path=str(socket_path))
    timeout = aiohttp.ClientTimeout(total=30)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
        session.request(method, f"http://clgwd{url}", json=body) as resp,
    ):
        return resp.status, await resp.json()


def _call_daemon(args: argparse.Namespace, method: str, url: str,
                 body: Any = None) -> tuple[int, Any] | None:
    socket_path = _control_socket(args)
    try:
        return asyncio.run(_control_request(socket_path, method, url, body))
    except (aiohttp.ClientConnectionError, FileNotFoundError, ConnectionRefusedError) as err:
        print(f"clgwd is not running (no answer on {socket_path}: {err})", file=sys.stderr)
        return None
    except PermissionError:
        print(f"permission denied on {socket_path}: run as root or a member of the clgwd "
              "group", file=sys.stderr)
        return None


def cmd_status(args: argparse.Namespace) -> int:
    answer = _call_daemon(args, "GET", "/v1/status")
    if answer is None:
        return EXIT_UNAVAILABLE
    _, body = answer
    if args.json:
        print(json.dumps(body, indent=2, sort_keys=True))
        return EXIT_OK
    print(f"clgwd {body['version']} (pid {body['pid']})")
    width = max((len(n) for n in body["components"]), default=0)
    for name, comp in body["components"].items():
        message = f"  {comp['message']}" if comp["message"] else ""
        print(f"  {name:<{width}}  {comp['state']:<9}{message}")
    healthy = all(c["state"] in {"running", "starting", "degraded"}
                  for c in body["components"].values())
    return EXIT_OK if healthy else EXIT_FAILURE


def cmd_reload(args: argparse.Namespace) -> int:
    answer = _call_daemon(args, "POST", "/v1/reload")
    if answer is None:
        return EXIT_UNAVAILABLE
    _, body = answer
    if body.get("applied"):
        print("config reloaded")
        return EXIT_OK
    print("config reload rejected; the running config stays:", file=sys.stderr)
    for line in body.get("errors", []):
        print(f"  {line}", file=sys.stderr)
    return EXIT_CONFIG


def cmd_preflight(args: argparse.Namespace) -> int:
    from clgwd.net.preflight import render_report, run_preflight  # noqa: PLC0415

    if args.local:
        try:
            config = load_config(args.config or DEFAULT_CONFIG_PATH)
        except ConfigError as err:
            print(err.render(), file=sys.stderr)
            return EXIT_CONFIG
        report = asyncio.run(run_preflight(config.network))
    else:
        code, report = _call_command(args, "network.preflight")
        if report is None:
            if code == EXIT_UNAVAILABLE:
                print("(clgwd preflight --local runs the checks without the daemon)",
                      file=sys.stderr)
            return code
    print(json.dumps(report, indent=2) if args.json else render_report(report))
    return EXIT_OK if report["ok"] else EXIT_FAILURE


def cmd_network(args: argparse.Namespace) -> int:
    code, result = _call_command(args, "network.confirm")
    if result is not None:
        print("network change confirmed")
    return code


def _call_command(args: argparse.Namespace, method: str) -> tuple[int, Any]:
    """Run a command-router method in the daemon: (exit code, result or None)."""
    answer = _call_daemon(args, "POST", f"/v1/commands/{method}", {})
    if answer is None:
        return EXIT_UNAVAILABLE, None
    status, body = answer
    if status != 200:
        print(body.get("message", body), file=sys.stderr)
        return EXIT_FAILURE, None
    return EXIT_OK, body["result"]


def cmd_demo(args: argparse.Namespace) -> int:
    from clgwd.demo import run_demo  # noqa: PLC0415 - only the demo needs it

    return run_demo(port=args.port, state_dir=args.state_dir)
