"""``clgwd run | check-config | status | reload | version``: the daemon itself."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from clgwd import __version__
from clgwd.cli.common import Subparsers, add_config_arg, add_socket_args, call_daemon
from clgwd.config import DEFAULT_CONFIG_PATH, ClgwdConfig, ConfigError, load_config
from clgwd.config.appliance import lockout_problems
from clgwd.errors import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, EXIT_UNAVAILABLE
from clgwd.logsetup import LEVELS, setup_logging


def add_parser(sub: Subparsers) -> None:
    run = sub.add_parser("run", help="run the daemon in the foreground (systemd's ExecStart)",
                         description="Run the gateway daemon until SIGTERM/SIGINT. "
                                     "SIGHUP reloads the config file.")
    add_config_arg(run)
    run.add_argument("--log-level", choices=sorted(LEVELS), default=None,
                     help="override logging.level from the config")
    run.add_argument("--appliance", action="store_true",
                     help="refuse to start with a config that would lock the technician "
                          "out of the appliance (see check-config --appliance)")

    check = sub.add_parser("check-config", help="validate a config file and exit",
                           description="Validate a config file. Exits 0 when valid; "
                                       "otherwise prints every error with its key path and "
                                       "exits 78 (EX_CONFIG).")
    check.add_argument("path", type=Path, nargs="?", default=DEFAULT_CONFIG_PATH,
                       help=f"config file (default {DEFAULT_CONFIG_PATH})")
    check.add_argument("--appliance", action="store_true",
                       help="also refuse a config that would lock the technician out of "
                            "the appliance (no managed port, page on no LAN address)")

    status = sub.add_parser("status", help="show the running daemon's component states",
                            description="Ask the running daemon over its control socket "
                                        "for the state of each component.")
    add_socket_args(status)
    status.add_argument("--json", action="store_true", help="print the raw JSON")

    reload = sub.add_parser("reload", help="ask the running daemon to reload its config",
                            description="Same as SIGHUP, but prints the outcome.")
    add_socket_args(reload)

    sub.add_parser("version", help="print the version", description="Print the version.")


def cmd_version(args: argparse.Namespace) -> int:
    print(f"clgwd {__version__}")
    return EXIT_OK


def cmd_check_config(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.path)
    except ConfigError as err:
        print(err.render(), file=sys.stderr)
        return EXIT_CONFIG
    if args.appliance and _locks_out(args.path, config):
        return EXIT_CONFIG
    print(f"{args.path}: OK")
    return EXIT_OK


def _locks_out(path: Path, config: ClgwdConfig) -> bool:
    """``--appliance``: print why this config would lock the technician out, if it would."""
    problems = lockout_problems(config)
    if problems:
        print(f"{path}: this config would lock the technician out of the appliance:",
              *(f"  {problem}" for problem in problems), sep="\n", file=sys.stderr)
    return bool(problems)


def cmd_run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as err:
        setup_logging(args.log_level or "info")
        print(err.render(), file=sys.stderr)
        return EXIT_CONFIG
    if args.appliance and _locks_out(args.config, config):
        return EXIT_CONFIG
    return run_daemon(config, args.config.resolve(), args.log_level)


def run_daemon(config: ClgwdConfig, path: Path | None, log_level: str | None) -> int:
    from clgwd.daemon import Daemon  # noqa: PLC0415 - only `run` loads the daemon

    setup_logging(log_level or config.logging.level)

    async def _main() -> int:
        return await Daemon(config, path, log_level_override=log_level).run()

    return asyncio.run(_main())


def cmd_status(args: argparse.Namespace) -> int:
    answer = call_daemon(args, "GET", "/v1/status")
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
    answer = call_daemon(args, "POST", "/v1/reload")
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
