"""``clgwd demo``: the whole gateway on localhost, with a throw-away state dir.

It writes a real config file (so SIGHUP reload works the same as in production),
starts the reference cloud in the same process, enrolls the gateway with it, runs the
daemon in the foreground and prints what to open. Later parts add a sample PBX
directory here.
"""

from __future__ import annotations

import asyncio
import tempfile
from importlib import resources
from pathlib import Path

from clgwd.cli_support import print_banner
from clgwd.config import Secret, load_config
from clgwd.daemon import EXIT_CONFIG, Daemon
from clgwd.link.enroll import enroll
from clgwd.logsetup import setup_logging
from clgwd.refcloud.server import RefCloud

DEMO_ACCOUNT = "demo"


def sample_directory() -> Path:
    """The demo PBX: a CSV directory shipped with the package (with irregularities)."""
    return Path(str(resources.files("clgwd.pbx") / "samples" / "directory.csv"))


def demo_config_text(state_dir: Path, port: int, tls_port: int = 8443, cloud_url: str = "",
                     cloud_ca: Path | None = None) -> str:
    text = (
        "# Written by `clgwd demo`.\n"
        f"state:\n  dir: {state_dir}\n"
        f"http:\n  listen:\n    - host: 127.0.0.1\n      port: {port}\n"
        f"  tls_listen:\n    - host: 127.0.0.1\n      port: {tls_port}\n"
        f"control:\n  socket: {state_dir / 'control.sock'}\n"
        "pbx:\n  type: csv\n  name: Demo PBX\n"
        f"  file:\n    path: {sample_directory()}\n"
        "sync:\n  interval_minutes: 20\n"
    )
    if cloud_url:
        text += f"cloud:\n  url: {cloud_url}\n  enrollment_ca_file: {cloud_ca}\n"
    return text


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
    async with RefCloud(base / "refcloud", "127.0.0.1", cloud_port,
                        view_port=cloud_port + 1 if cloud_port else 0) as cloud:
        config_path = base / "clgwd.yaml"
        await asyncio.to_thread(config_path.write_text,
                                demo_config_text(base, port, tls_port, cloud.url,
                                                 cloud.ca_file),
                                encoding="utf-8")
        config = await asyncio.to_thread(load_config, config_path)
        token = await cloud.create_token(DEMO_ACCOUNT)
        enrollment = await enroll(config.state.dir, cloud.url, DEMO_ACCOUNT, Secret(token),
                                  cloud.ca_file)
        print_banner([
            "clgwd demo is starting. Open:",
            f"  page:       https://127.0.0.1:{tls_port}/ (setup code: clgwd setup-code "
            f"-c {config_path})",
            f"  cloud view: {cloud.view_url}/gateways/{enrollment.gateway_id}",
            f"  health:     http://127.0.0.1:{port}/api/v1/health",
            f"  metrics:    http://127.0.0.1:{port}/metrics",
            f"  status:     clgwd status --socket {config.control.socket}",
            f"  commands:   curl --cacert {cloud.ca_file} -H 'Authorization: Bearer "
            f"{cloud.admin_token}'",
            f"              -d '{{\"method\": \"status.report\"}}' "
            f"{cloud.url}/api/gateways/{enrollment.gateway_id}/commands",
            f"  sync:       clgwd sync [--preview] --socket {config.control.socket}",
            f"State dir: {base} (config: {config_path})",
            "Press Ctrl-C to stop.",
        ])
        return await Daemon(config, config_path).run()
