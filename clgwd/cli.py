"""The ``clgwd`` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from clgwd import __version__
from clgwd.appliance import cli_console
from clgwd.cli_support import control_request
from clgwd.config import DEFAULT_CONFIG_PATH, ClgwdConfig, ConfigError, load_config
from clgwd.config.appliance import lockout_problems
from clgwd.config.loader import parse_yaml
from clgwd.config.models import DEFAULT_CONTROL_SOCKET
from clgwd.daemon import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, Daemon
from clgwd.link.cli import add_enroll_parser, cmd_enroll
from clgwd.logsetup import LEVELS, setup_logging
from clgwd.refcloud.cli import add_refcloud_parser, cmd_refcloud

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
    _add_socket_args(status)
    status.add_argument("--json", action="store_true", help="print the raw JSON")

    reload = sub.add_parser("reload", help="ask the running daemon to reload its config",
                            description="Same as SIGHUP, but prints the outcome.")
    _add_socket_args(reload)

    sync = sub.add_parser("sync", help="sync PBX users now, or preview the changes",
                          description="Ask the running daemon to sync PBX users now (the "
                                      "\"Sync Now\" button), or with --preview to read the PBX "
                                      "and show the changes and irregularities without "
                                      "applying them. Without a running daemon, --preview "
                                      "reads the configured source and the state database "
                                      "(read-only) itself; a sync needs the daemon (exit "
                                      "69). Exits 0 on success, 1 when the sync failed or "
                                      "was aborted by a safety rule.")
    _add_socket_args(sync)
    sync.add_argument("--preview", action="store_true", help="dry run: show, do not apply")
    sync.add_argument("--json", action="store_true", help="print the raw JSON")
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
    _add_tunnel_parser(sub)

    reset = sub.add_parser(
        "factory-reset", help="erase every setting and secret, then restart clgwd",
        description="Reset the gateway to factory defaults: the admin password, site, PBX "
                    "settings, sync state, cloud enrollment and network changes are erased "
                    "and the daemon restarts. The config file is kept.")
    _add_socket_args(reset)
    reset.add_argument("--confirm", required=True, metavar="WORD",
                       help="type revert to confirm")

    sub.add_parser("version", help="print the version", description="Print the version.")

    setup = sub.add_parser("setup-code", help="print the onboarding page's setup code",
                           description="Print the setup code the technician enters on the "
                                       "first visit of the onboarding page, and the HTTPS "
                                       "certificate fingerprint. Reads the state dir "
                                       "(needs root).")
    _add_config_arg(setup)

    cli_console.add_parser(sub)

    demo = sub.add_parser("demo", help="run everything on localhost for a demonstration",
                          description="Start the daemon with a temporary state dir on "
                                      "unprivileged localhost ports, print the URLs to "
                                      "open, and stop cleanly on Ctrl-C.")
    demo.add_argument("--port", type=int, default=8080, help="HTTP port (default 8080)")
    demo.add_argument("--tls-port", type=int, default=8443,
                      help="HTTPS port of the onboarding page (default 8443)")
    demo.add_argument("--state-dir", type=Path, default=None,
                      help="keep state here instead of a temporary dir")
    demo.add_argument("--cloud-port", type=int, default=0,
                      help="reference cloud HTTPS port (default: any free port; the "
                           "plain-HTTP view listens on the next port)")
    add_enroll_parser(sub)
    add_refcloud_parser(sub)
    return parser


def _add_tunnel_parser(sub: Any) -> None:
    tunnel = sub.add_parser("tunnel", help="list, start or stop reverse tunnels",
                            description="Control the reverse tunnels of the running daemon.")
    actions = tunnel.add_subparsers(dest="tunnel_action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="show every configured tunnel")
    _add_socket_args(listing)
    listing.add_argument("--json", action="store_true", help="print the raw JSON")
    for action in ("start", "stop"):
        parser = actions.add_parser(action, help=f"{action} one tunnel or all of them")
        _add_socket_args(parser)
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("name", nargs="?", help="tunnel name")
        which.add_argument("--all", action="store_true", help=f"{action} every tunnel")
        if action == "start":
            parser.add_argument("--expiry", type=float, default=None,
                                help="seconds until it stops by itself (default from config)")


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
        "enroll": cmd_enroll, "refcloud": cmd_refcloud, "sync": cmd_sync,
        "preflight": cmd_preflight, "network": cmd_network,
        "factory-reset": cmd_factory_reset,
        "tunnel": cmd_tunnel, "setup-code": cmd_setup_code,
        "console-banner": cli_console.run,
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
        config = load_config(args.path)
    except ConfigError as err:
        print(err.render(), file=sys.stderr)
        return EXIT_CONFIG
    if args.appliance and _locks_out(args.path, config):
        return EXIT_CONFIG
    print(f"{args.path}: OK")
    return EXIT_OK


def _locks_out(path: Path, config: ClgwdConfig) -> bool:
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


class _NotRunning(Exception):
    """Nothing answers on the control socket."""


def _call_daemon(args: argparse.Namespace, method: str, url: str,
                 total_timeout: float = 30, body: Any = None) -> tuple[int, Any] | None:
    try:
        return _ask_daemon(args, method, url, total_timeout, body)
    except _NotRunning as err:
        print(f"clgwd is not running ({err})", file=sys.stderr)
        return None


def _ask_daemon(args: argparse.Namespace, method: str, url: str,
                total_timeout: float = 30, body: Any = None) -> tuple[int, Any] | None:
    """The daemon's answer; None (said on stderr) when it refuses us; ``_NotRunning``
    when nothing listens, so a caller can fall back to working without it."""
    socket_path = _control_socket(args)
    try:
        return asyncio.run(control_request(socket_path, method, url, total_timeout, body))
    except (aiohttp.ClientConnectionError, FileNotFoundError, ConnectionRefusedError) as err:
        raise _NotRunning(f"no answer on {socket_path}: {err}") from err
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


SYNC_TIMEOUT = 600.0
"""A sync is bounded by the PBX read timeout plus the apply; leave room for both."""


def cmd_sync(args: argparse.Namespace) -> int:
    if not args.preview:
        answer = _call_daemon(args, "POST", "/v1/command/sync.now", SYNC_TIMEOUT)
    else:
        try:
            answer = _ask_daemon(args, "POST", "/v1/command/sync.preview", SYNC_TIMEOUT)
        except _NotRunning as err:
            print(f"clgwd is not running ({err}); previewing from the config and the "
                  "state database, read-only", file=sys.stderr)
            return _preview_without_daemon(args)
    if answer is None:
        return EXIT_UNAVAILABLE
    return _report_sync(args, *answer)


def _preview_without_daemon(args: argparse.Namespace) -> int:
    from clgwd.errors import ClgwdError  # noqa: PLC0415
    from clgwd.sync.offline import preview_without_daemon  # noqa: PLC0415

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


def cmd_factory_reset(args: argparse.Namespace) -> int:
    code, result = _call_command(args, "system.factory_reset", {"confirm": args.confirm})
    if result is not None:
        print(f"factory reset committed; clgwd restarts in {result['restart_in_s']:g} s "
              "and starts from defaults (a new setup code is printed in the journal)")
    return code


def _call_command(args: argparse.Namespace, method: str,
                  params: dict[str, Any] | None = None) -> tuple[int, Any]:
    """Run a command-router method in the daemon: (exit code, result or None)."""
    answer = _call_daemon(args, "POST", f"/v1/command/{method}", body=params or {})
    if answer is None:
        return EXIT_UNAVAILABLE, None
    status, body = answer
    if status != 200:
        print(body.get("message", body), file=sys.stderr)
        return EXIT_FAILURE, None
    return EXIT_OK, body


def cmd_tunnel(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {}
    if args.tunnel_action != "list":
        params = {"all": True} if args.all else {"name": args.name}
        if getattr(args, "expiry", None) is not None:
            params["expiry"] = args.expiry
    answer = _call_daemon(args, "POST", f"/v1/command/tunnel.{args.tunnel_action}", body=params)
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


def cmd_setup_code(args: argparse.Namespace) -> int:
    from clgwd.web.setupcode import read_setup_info  # noqa: PLC0415 - only this command

    try:
        state_dir = load_config(args.config).state.dir
        info = read_setup_info(state_dir)
    except ConfigError as err:
        print(err.render(), file=sys.stderr)
        return EXIT_CONFIG
    except (OSError, sqlite3.Error) as err:
        print(f"cannot read the state dir: {err}", file=sys.stderr)
        return EXIT_FAILURE
    if info.code is None:
        print(f"no setup code yet in {state_dir}: start clgwd once", file=sys.stderr)
        return EXIT_UNAVAILABLE
    print(f"Setup code: {info.code}")
    if info.password_set:
        print("(already used: the admin password is set)")
    if info.fingerprint:
        print(f"HTTPS certificate SHA-256 fingerprint: {info.fingerprint}")
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from clgwd.demo import run_demo  # noqa: PLC0415 - only the demo needs it

    return run_demo(port=args.port, state_dir=args.state_dir, tls_port=args.tls_port,
                    cloud_port=args.cloud_port)
