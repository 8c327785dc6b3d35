"""image/install.sh stages a working installation (venv, config, unit)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from clgwd import __version__

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def test_install_into_destdir(tmp_path: Path) -> None:
    dest = tmp_path / "root"
    result = subprocess.run([str(ROOT / "image" / "install.sh"), "--destdir", str(dest)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    binary = dest / "opt" / "clgwd" / "current" / "bin" / "clgwd"
    assert (dest / "opt" / "clgwd" / "current").readlink() == Path("releases", __version__)
    version = subprocess.run([str(binary), "version"], capture_output=True, text=True,
                             timeout=60)
    assert version.stdout.startswith("clgwd ")
    config = dest / "etc" / "clgwd" / "clgwd.yaml"
    assert (config.stat().st_mode & 0o777) == 0o640
    assert (dest / "etc" / "systemd" / "system" / "clgwd.service").read_text() == (
        ROOT / "systemd" / "clgwd.service").read_text()
