"""The rollback units: they verify with systemd-analyze and are wired as documented."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import require_program

SYSTEMD = Path(__file__).resolve().parents[2] / "systemd"
UNITS = ("clgwd.service", "clgwd-rollback.service", "clgwd-update-deadline.service",
         "clgwd-update-deadline.timer")


def _copies(tmp_path: Path) -> list[Path]:
    """The units, with the appliance's clgwd path pointed at this venv's entry point."""
    binary = shutil.which("clgwd", path=str(Path(sys.executable).parent))
    assert binary is not None
    out = []
    for name in UNITS:
        copy = tmp_path / name
        copy.write_text((SYSTEMD / name).read_text().replace("/opt/clgwd/current/bin/clgwd",
                                                             binary))
        out.append(copy)
    return out


def test_rollback_units_verify(tmp_path: Path) -> None:
    """systemd-analyze verify accepts the service, the rollback units and the timer."""
    tool = require_program("systemd-analyze")
    result = subprocess.run([tool, "verify", *map(str, _copies(tmp_path))],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    for name in UNITS:
        assert name not in result.stderr, result.stderr


def test_failure_of_clgwd_starts_the_rollback() -> None:
    """clgwd.service names the rollback unit in OnFailure= and keeps its start limits."""
    lines = (SYSTEMD / "clgwd.service").read_text().splitlines()
    assert "OnFailure=clgwd-rollback.service" in lines
    assert "StartLimitBurst=10" in lines
    assert "ExecStart=/opt/clgwd/current/bin/clgwd run --config /etc/clgwd/clgwd.yaml" in lines


def test_rollback_units_run_the_standalone_program() -> None:
    """Both rollback services run the stdlib-only program with the system python, in
    isolated mode, with the reason that matches how they are started."""
    for name, reason in (("clgwd-rollback.service", "unit-failed"),
                         ("clgwd-update-deadline.service", "deadline")):
        text = (SYSTEMD / name).read_text()
        assert (f"ExecStart=/usr/bin/python3 -I /usr/lib/clgwd/clgwd-rollback --root "
                f"/opt/clgwd --reason {reason}") in text.splitlines(), name
        assert "clgwd/bin" not in text and "current/bin" not in text
    timer = (SYSTEMD / "clgwd-update-deadline.timer").read_text().splitlines()
    assert "Unit=clgwd-update-deadline.service" in timer


def test_the_deadline_unit_logs_only_warnings_and_worse() -> None:
    """The timer fires every 30 s: PID 1's "skipped because of an unmet condition" line
    and the "still on trial" output are dropped; the other rollback unit logs all."""
    deadline = (SYSTEMD / "clgwd-update-deadline.service").read_text().splitlines()
    assert "LogLevelMax=warning" in deadline
    assert not any(line.startswith("LogLevelMax=")
                   for line in (SYSTEMD / "clgwd-rollback.service").read_text().splitlines())
