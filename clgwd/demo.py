"""``clgwd demo``: the whole gateway on localhost, with a throw-away state dir.

It writes a real config file (so SIGHUP reload works the same as in production),
runs the daemon in the foreground and prints what to open. Later parts add the
reference cloud and a sample PBX directory here.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from clgwd.cli_support import print_banner
from clgwd.config import load_config
from clgwd.daemon import EXIT_CONFIG


def demo_config_text(state_dir: Path, port: int, tls_port: int = 8443) -> str:
    return (
        "# Written by `clgwd demo`.\n"
        f"state:\n  dir: {state_dir}\n"
        f"http:\n  listen:\n    - host: 127.0.0.1\n      port: {port}\n"
        f"  tls_listen:\n    - host: 127.0.0.1\n      port: {tls_port}\n"
        f"control:\n  socket: {state_dir / 'control.sock'}\n"
    )


def run_demo(port: int, state_dir: Path | None, tls_port: int = 8443) -> int:
    from clgwd.cli import run_daemon  # noqa: PLC0415 - avoid an import cycle

    with tempfile.TemporaryDirectory(prefix="clgwd-demo-") as tmp:
        base = state_dir or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        config_path = base / "clgwd.yaml"
        config_path.write_text(demo_config_text(base, port, tls_port), encoding="utf-8")
        config = load_config(config_path)
        if not 1 <= port <= 65535:
            return EXIT_CONFIG
        print_banner([
            "clgwd demo is starting. Open:",
            f"  page:    https://127.0.0.1:{tls_port}/ (setup code: clgwd setup-code "
            f"-c {config_path})",
            f"  health:  http://127.0.0.1:{port}/api/v1/health",
            f"  metrics: http://127.0.0.1:{port}/metrics",
            f"  status:  clgwd status --socket {config.control.socket}",
            f"State dir: {base} (config: {config_path})",
            "Press Ctrl-C to stop.",
        ])
        return run_daemon(config, config_path, None)
