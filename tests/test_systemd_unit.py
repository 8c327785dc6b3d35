"""systemd/clgwd.service passes systemd-analyze verify and its security score is <= 2.5."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import require_program

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "clgwd.service"
INSTALLED_BINARY = "/opt/clgwd/current/bin/clgwd"


def _unit_for_this_checkout(tmp_path: Path) -> Path:
    """The unit with its ExecStart pointing at this checkout's clgwd, and nothing else changed.

    verify checks that executables exist; the appliance path /opt/clgwd does not exist on a
    developer machine, so the copy points at the same entry point installed in the venv.
    """
    binary = shutil.which("clgwd", path=str(Path(sys.executable).parent))
    assert binary is not None, "clgwd entry point is not installed in this venv"
    text = UNIT.read_text()
    copy = tmp_path / "clgwd.service"
    copy.write_text(text.replace(INSTALLED_BINARY, binary))
    assert copy.read_text().count(binary) == text.count(INSTALLED_BINARY) == 2
    return copy


def test_unit_verifies(tmp_path: Path) -> None:
    tool = require_program("systemd-analyze")
    result = subprocess.run([tool, "verify", str(_unit_for_this_checkout(tmp_path))],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "clgwd.service" not in result.stderr, result.stderr


def test_security_exposure_is_at_most_2_5(capsys: pytest.CaptureFixture[str]) -> None:
    tool = require_program("systemd-analyze")
    result = subprocess.run([tool, "security", "--offline=true", "--no-pager", str(UNIT)],
                            capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for clgwd\.service: ([0-9.]+)", result.stdout)
    assert match is not None, result.stdout + result.stderr
    score = float(match.group(1))
    with capsys.disabled():
        print(f"\nsystemd-analyze security --offline=true: exposure {score} (limit 2.5)")
    assert score <= 2.5


def test_unit_declares_the_required_behaviour() -> None:
    text = UNIT.read_text()
    for line in ("Type=notify", "Restart=on-failure", "NoNewPrivileges=yes",
                 "ProtectSystem=strict", "PrivateTmp=yes", "RestartPreventExitStatus=78",
                 "ExecReload=/bin/kill -HUP $MAINPID"):
        assert line in text.splitlines(), line
    assert re.search(r"^WatchdogSec=\d+s$", text, re.M)
    caps = re.search(r"^CapabilityBoundingSet=(.*)$", text, re.M)
    assert caps is not None
    assert set(caps.group(1).split()) == {"CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"}


def test_factory_reset_exit_code_is_restarted() -> None:
    """The daemon exits with EXIT_RESTART after a factory reset: Restart=on-failure
    restarts on it only if no RestartPreventExitStatus / SuccessExitStatus lists it."""
    from clgwd.daemon import EXIT_RESTART

    text = UNIT.read_text()
    assert "Restart=on-failure" in text.splitlines()
    for key in ("RestartPreventExitStatus", "SuccessExitStatus"):
        for match in re.finditer(rf"^{key}=(.*)$", text, re.M):
            assert str(EXIT_RESTART) not in match.group(1).split(), key
