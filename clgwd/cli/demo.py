"""``clgwd demo``: the whole gateway on localhost, with a throw-away state dir.

It writes a real config file (so SIGHUP reload works the same as in production),
starts the reference cloud in the same process, enrolls the gateway with it, runs the
daemon in the foreground and prints what to open. A sample "LAN admin UI" (a tiny
page on 127.0.0.1) is allow-listed as a tunnel target; once the gateway is online the
demo starts that tunnel through the refcloud and prints a Launch URL that shows the
page through the gateway and the reference cloud. Later parts add a sample PBX
directory here.

The demo never touches the developer's machine: Reboot restarts only the demo's daemon
(``system.reboot_restarts_daemon``), a factory reset wipes only the gateway's state
(``<demo dir>/gateway``, not the config or the reference cloud) and restarts it, and
updates stay unmanaged (no ``system.update_command``). The commands the banner prints
name this installation's ``clgwd`` by its absolute path, so they run as printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import secrets
import shlex
import socket
import sqlite3
import sys
import tempfile
from collections.abc import AsyncIterator
from html import escape
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from clgwd.cli.common import Subparsers, print_banner
from clgwd.config import Secret, load_config
from clgwd.errors import EXIT_CONFIG, EXIT_RESTART
from clgwd.logsetup import setup_logging

if TYPE_CHECKING:
    from clgwd.refcloud.server import RefCloud
    from clgwd.refcloud.sessions import GatewaySession

_LOGGER = logging.getLogger(__name__)
DEMO_ACCOUNT = "demo"
DEMO_TUNNEL = "mivb-admin"
DEMO_UI_TITLE = "MiVoice Business administration (demo)"
LAUNCH_WAIT = 60.0
"""Seconds the demo waits for the gateway to come online before giving up on Launch."""
SETUP_CODE_WAIT = 30.0
"""Seconds the demo waits for the page to create its setup code."""
GATEWAY_STATE = "gateway"
"""The gateway's state dir inside the demo dir (a factory reset wipes only this)."""


def clgwd_command() -> str:
    """This installation's ``clgwd``, runnable as printed (absolute path, quoted): the
    script next to the running interpreter (a venv's bin), else ``python -m clgwd``."""
    script = Path(sys.executable).with_name("clgwd")
    if script.is_file():
        return shlex.quote(str(script))
    return f"{shlex.quote(sys.executable)} -m clgwd"


@contextlib.asynccontextmanager
async def lan_admin_ui() -> AsyncIterator[int]:
    """A stand-in for a LAN admin web UI on 127.0.0.1 (free port); yields the port."""

    async def index(request: web.Request) -> web.Response:
        body = (f"<!doctype html><title>{escape(DEMO_UI_TITLE)}</title>"
                f"<h1>{escape(DEMO_UI_TITLE)}</h1><p>Served on the gateway's LAN; you "
                f"reached it as <code>{escape(request.host)}</code> through the cloud "
                "tunnel.</p>")
        return web.Response(text=body, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", index)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


def sample_directory() -> Path:
    """The demo PBX: a CSV directory shipped with the package (with irregularities)."""
    return Path(str(resources.files("clgwd.pbx") / "samples" / "directory.csv"))


def _free_udp_port() -> int:
    """A UDP port free on 127.0.0.1 right now (the agent binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def demo_config_text(base: Path, port: int, tls_port: int = 8443, cloud_url: str = "",
                     cloud_ca: Path | None = None, *, lan_ui_port: int | None = None,
                     snmp: tuple[int, str] | None = None) -> str:
    """The demo's config; the gateway's state is ``base/gateway``."""
    text = (
        "# Written by `clgwd demo`.\n"
        f"state:\n  dir: {base / GATEWAY_STATE}\n"
        f"http:\n  listen:\n    - host: 127.0.0.1\n      port: {port}\n"
        f"  tls_listen:\n    - host: 127.0.0.1\n      port: {tls_port}\n"
        f"control:\n  socket: {base / 'control.sock'}\n"
        "pbx:\n  type: csv\n  name: Demo PBX\n"
        f"  file:\n    path: {sample_directory()}\n"
        "sync:\n  interval_minutes: 20\n"
        # Reboot restarts the demo's daemon only; no update_command: updates unmanaged.
        "system:\n  reboot_restarts_daemon: true\n  action_delay: 1\n"
    )
    if cloud_url:
        text += f"cloud:\n  url: {cloud_url}\n  enrollment_ca_file: {cloud_ca}\n"
    if snmp is not None:  # the SNMP agent on loopback: (free UDP port, community)
        text += (f"monitor:\n  snmp:\n    listen: ['127.0.0.1:{snmp[0]}']\n"
                 f"    community: '{snmp[1]}'\n")
    if lan_ui_port is not None:
        # The sample UI runs on the gateway host itself: loopback is always refused
        # unless the target explicitly allows it. Tickets' audience and the authority
        # key come from enrollment (no tunnel.gateway_id / authority_public_key here).
        text += (
            "tunnel:\n  targets:\n"
            f"    - name: lan-admin-ui\n      host: 127.0.0.1\n      ports: [{lan_ui_port}]\n"
            "      allow_special: [loopback]\n"
            f"  tunnels:\n    - name: {DEMO_TUNNEL}\n      target: lan-admin-ui\n"
            "      expiry: 43200\n")
    return text


def add_parser(sub: Subparsers) -> None:
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


def run(args: argparse.Namespace) -> int:
    return run_demo(port=args.port, state_dir=args.state_dir, tls_port=args.tls_port,
                    cloud_port=args.cloud_port)


def run_demo(port: int, state_dir: Path | None, tls_port: int = 8443,
             cloud_port: int = 0) -> int:
    """``cloud_port`` 0 picks free ports for the refcloud and its view."""
    if not (1 <= port <= 65535 and 1 <= tls_port <= 65535 and 0 <= cloud_port <= 65534):
        return EXIT_CONFIG
    setup_logging("info")
    with tempfile.TemporaryDirectory(prefix="clgwd-demo-") as tmp:
        base = state_dir or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        return asyncio.run(_demo(base, port, tls_port, cloud_port))


async def _demo(base: Path, port: int, tls_port: int, cloud_port: int) -> int:
    """Reference cloud and daemon side by side in one event loop."""
    # The daemon and the refcloud load only when the demo runs, not with every command.
    from clgwd.link.enroll import enroll  # noqa: PLC0415
    from clgwd.refcloud.server import RefCloud  # noqa: PLC0415

    async with (RefCloud(base / "refcloud", "127.0.0.1", cloud_port,
                         view_port=cloud_port + 1 if cloud_port else 0) as cloud,
                lan_admin_ui() as lan_ui_port):
        config_path = base / "clgwd.yaml"
        snmp = (_free_udp_port(), secrets.token_hex(6))
        await asyncio.to_thread(config_path.write_text,
                                demo_config_text(base, port, tls_port, cloud.url,
                                                 cloud.ca_file, lan_ui_port=lan_ui_port,
                                                 snmp=snmp),
                                encoding="utf-8")
        config = await asyncio.to_thread(load_config, config_path)
        token = await cloud.create_token(DEMO_ACCOUNT)
        enrollment = await enroll(config.state.dir, cloud.url, DEMO_ACCOUNT, Secret(token),
                                  cloud.ca_file)
        clgwd = clgwd_command()
        print_banner([
            "clgwd demo is starting. Open:",
            f"  page:       https://127.0.0.1:{tls_port}/ (the setup code follows below)",
            f"  cloud view: {cloud.view_url}/gateways/{enrollment.gateway_id}",
            f"  health:     http://127.0.0.1:{port}/api/v1/health",
            f"  metrics:    http://127.0.0.1:{port}/metrics",
            f"  status:     {clgwd} status --socket {config.control.socket}",
            f"  commands:   curl --cacert {cloud.ca_file} -H 'Authorization: Bearer "
            f"{cloud.admin_token}'",
            f"              -d '{{\"method\": \"status.report\"}}' "
            f"{cloud.url}/api/gateways/{enrollment.gateway_id}/commands",
            f"  sync:       {clgwd} sync [--preview] --socket {config.control.socket}",
            f"  SNMP:       snmpwalk -v2c -c {snmp[1]} 127.0.0.1:{snmp[0]} 1.3.6.1 "
            "(community " + snmp[1] + "; MIB: mibs/CLGWD-MIB.txt)",
            f"  inventory:  {clgwd} inventory --socket {config.control.socket}",
            f"  SIP trunks: {clgwd} trunk add|list|check|remove --socket {config.control.socket}",
            f"  LAN UI:     http://127.0.0.1:{lan_ui_port}/ (direct; the Launch URL below "
            "opens it through the gateway)",
            f"State dir: {base} (config: {config_path})",
            "Reboot on the page restarts only this demo's daemon; nothing on this machine "
            "is rebooted, reset or updated.",
            "Press Ctrl-C to stop.",
        ])
        async with asyncio.TaskGroup() as tg:
            launcher = tg.create_task(_launch(cloud, enrollment.gateway_id),
                                      name="clgwd[demo].launch")
            code = await _run_daemon(cloud, config_path, clgwd, tg)
            launcher.cancel()
        return code


async def _run_daemon(cloud: RefCloud, config_path: Path, clgwd: str,
                      tg: asyncio.TaskGroup) -> int:
    """Run the daemon; start it again each time it asks for a restart (Reboot or a
    factory reset on the page), as systemd would on the appliance."""
    from clgwd.daemon import Daemon  # noqa: PLC0415

    while True:
        config = await asyncio.to_thread(load_config, config_path)
        announcer = tg.create_task(_announce(cloud, config.state.dir, config_path, clgwd),
                                   name="clgwd[demo].announce")
        code = await Daemon(config, config_path).run()
        announcer.cancel()
        if code != EXIT_RESTART:
            return code
        print_banner(["The demo's daemon restarted (Reboot or factory reset on the page)."])


async def _announce(cloud: RefCloud, state_dir: Path, config_path: Path, clgwd: str) -> None:
    """Once the daemon runs (a factory reset is wiped by then): a token to enroll again
    if the state was reset, and the page's setup code (demo only: on an appliance the
    code is on the console and the label)."""
    from clgwd.link.identity import IdentityFiles  # noqa: PLC0415

    await _announce_setup_code(state_dir, config_path, clgwd)
    if await asyncio.to_thread(IdentityFiles(state_dir).load) is None:
        token = await cloud.create_token(DEMO_ACCOUNT)
        print_banner([f"The gateway is not enrolled any more (factory reset): on the Cloud "
                      f"page enter Account ID {DEMO_ACCOUNT} and token {token}"])


async def _announce_setup_code(state_dir: Path, config_path: Path, clgwd: str) -> None:
    """Print the page's setup code once the daemon has made it."""
    from clgwd.cli.setup_code_info import read_setup_info  # noqa: PLC0415
    from clgwd.system.reset import reset_pending  # noqa: PLC0415

    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETUP_CODE_WAIT
    while loop.time() < deadline:
        if await asyncio.to_thread(reset_pending, state_dir):  # not wiped yet
            await asyncio.sleep(0.2)
            continue
        try:
            info = await asyncio.to_thread(read_setup_info, state_dir)
        except (OSError, sqlite3.Error):
            info = None
        if info is not None and info.password_set:
            return
        if info is not None and info.code is not None:
            print_banner([f"Setup code for the page: {info.code}",
                          f"  (also: {clgwd} setup-code -c {shlex.quote(str(config_path))})"])
            return
        await asyncio.sleep(0.2)
    _LOGGER.warning("The page's setup code did not appear within %.0f s; run %s setup-code "
                    "-c %s", SETUP_CODE_WAIT, clgwd, config_path)


async def _launch(cloud: RefCloud, gateway_id: str) -> None:
    """Once the gateway is online: start the demo tunnel and print its Launch URL."""
    from clgwd.protocol.rpc import RpcFailed  # noqa: PLC0415
    from clgwd.refcloud.hub import LaunchError  # noqa: PLC0415
    from clgwd.refcloud.sessions import SessionClosed  # noqa: PLC0415

    online = asyncio.Event()

    def ready(session: GatewaySession) -> None:
        if session.gateway_id == gateway_id:
            online.set()

    cloud.on_session_ready.append(ready)
    try:
        if gateway_id in cloud.sessions:
            online.set()
        async with asyncio.timeout(LAUNCH_WAIT):
            await online.wait()
            answer = await cloud.launch(gateway_id, DEMO_TUNNEL, admin="demo-admin")
    except (TimeoutError, SessionClosed, RpcFailed, LaunchError) as err:
        _LOGGER.warning("Demo Launch URL not available: %s: %s", type(err).__name__, err)
        return
    finally:
        cloud.on_session_ready.remove(ready)
    print_banner([
        f"Launch (LAN admin UI through the gateway and the cloud): {answer['url']}",
        f"  tunnel {DEMO_TUNNEL}: also listed at {cloud.view_url}/gateways/{gateway_id}",
    ])
