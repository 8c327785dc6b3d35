"""``clgwd demo``: the whole gateway on localhost, with a throw-away state dir.

It writes a real config file (so SIGHUP reload works the same as in production),
runs the daemon in the foreground and prints what to open. Later parts add the
reference cloud and a sample PBX directory here.
"""

from __future__ import annotations

import tempfile
from importlib import resources
from pathlib import Path

from clgwd.cli_support import print_banner
from clgwd.config import load_config
from clgwd.daemon import EXIT_CONFIG


def sample_directory() -> Path:
    """The demo PBX: a CSV directory shipped with the package (with irregularities)."""
    return Path(str(resources.files("clgwd.pbx") / "samples" / "directory.csv"))


def demo_config_text(state_dir: Path, port: int) -> str:
    return (
        "# Written by `clgwd demo`.\n"
        f"state:\n  dir: {state_dir}\n"
        f"http:\n  listen:\n    - host: 127.0.0.1\n      port: {port}\n"
        f"control:\n  socket: {state_dir / 'control.sock'}\n"
        "pbx:\n  type: csv\n  name: Demo PBX\n"
        f"  file:\n    path: {sample_directory()}\n"
        "sync:\n  interval_minutes: 20\n"
    )


def run_demo(port: int, state_dir: Path | None) -> int:
    from clgwd.cli import run_daemon  # noqa: PLC0415 - avoid an import cycle

    with tempfile.TemporaryDirectory(prefix="clgwd-demo-") as tmp:
        base = state_dir or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        config_path = base / "clgwd.yaml"
        config_path.write_text(demo_config_text(base, port), encoding="utf-8")
        config = load_config(config_path)
        if not 1 <= port <= 65535:
            return EXIT_CONFIG
        print_banner([
            "clgwd demo is starting. Open:",
            f"  health:  http://127.0.0.1:{port}/api/v1/health",
            f"  metrics: http://127.0.0.1:{port}/metrics",
            f"  status:  clgwd status --socket {config.control.socket}",
            f"  sync:    clgwd sync [--preview] --socket {config.control.socket}",
            f"State dir: {base} (config: {config_path})",
            "Press Ctrl-C to stop.",
        ])
        return run_daemon(config, config_path, None)
