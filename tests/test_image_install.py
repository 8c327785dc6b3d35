"""image/install.sh stages a working installation (venv, config, unit)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def test_install_into_destdir(tmp_path: Path) -> None:
    dest = tmp_path / "root"
    result = subprocess.run([str(ROOT / "image" / "install.sh"), "--destdir", str(dest)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    binary = dest / "opt" / "clgwd" / "bin" / "clgwd"
    version = subprocess.run([str(binary), "version"], capture_output=True, text=True,
                             timeout=60)
    assert version.stdout.startswith("clgwd ")
    config = dest / "etc" / "clgwd" / "clgwd.yaml"
    assert (config.stat().st_mode & 0o777) == 0o640
    assert (dest / "etc" / "systemd" / "system" / "clgwd.service").read_text() == (
        ROOT / "systemd" / "clgwd.service").read_text()
