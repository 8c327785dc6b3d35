"""image/install.sh stages a working installation (release venv, config, units)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from clgwd import __version__
from clgwd.system import rollback as layout

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def test_install_into_destdir(tmp_path: Path) -> None:
    dest = tmp_path / "root"
    result = subprocess.run([str(ROOT / "image" / "install.sh"), "--destdir", str(dest)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    root = dest / "opt" / "clgwd"
    assert layout.current_version(root) == __version__
    assert layout.is_complete(root, __version__)
    # A relative link (the release root can move: the image links /opt/clgwd to /var).
    assert (root / layout.CURRENT).readlink() == Path("releases", __version__)
    binary = root / layout.CURRENT / "bin" / "clgwd"
    version = subprocess.run([str(binary), "version"], capture_output=True, text=True,
                             timeout=60)
    assert version.stdout.startswith("clgwd ")
    config = dest / "etc" / "clgwd" / "clgwd.yaml"
    assert (config.stat().st_mode & 0o777) == 0o640
    for unit in ("clgwd.service", "clgwd-rollback.service", "clgwd-update-deadline.service",
                 "clgwd-update-deadline.timer"):
        assert (dest / "etc" / "systemd" / "system" / unit).read_text() == (
            ROOT / "systemd" / unit).read_text()
    rollback = dest / "usr" / "lib" / "clgwd" / "clgwd-rollback"
    assert rollback.read_bytes() == (ROOT / "clgwd" / "system" / "rollback.py").read_bytes()
    assert rollback.stat().st_mode & 0o111
