"""The standalone rollback program and the atomic switch, including power cuts (kill -9)
at every file-system step of the switch and of the rollback itself."""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clgwd.system import rollback as layout
from clgwd.system.releases import begin_switch

SCRIPT = Path(layout.__file__)
OLD, NEW = "0.1.0", "0.2.0"
SYSTEM_PYTHON = "/usr/bin/python3"


def make_root(tmp: Path, *, complete: tuple[str, ...] = (OLD, NEW)) -> Path:
    """A release root with fake releases (bin/clgwd + completion mark) on ``OLD``."""
    root = tmp / "opt-clgwd"
    for version in (OLD, NEW):
        (root / "releases" / version / "bin").mkdir(parents=True, exist_ok=True)
        (root / "releases" / version / "bin" / "clgwd").write_text("#!/bin/sh\n")
        if version in complete:
            (root / "releases" / version / layout.COMPLETE).write_text("1\n")
    os.symlink(f"releases/{OLD}", root / "current")
    return root


def test_switch_replaces_current_with_a_relative_link(tmp_path: Path) -> None:
    """The switch points current at releases/<version> with a relative symlink."""
    root = make_root(tmp_path)
    layout.switch(root, NEW)
    assert os.readlink(root / "current") == f"releases/{NEW}"
    assert layout.current_version(root) == NEW


def test_switch_to_an_incomplete_release_is_refused(tmp_path: Path) -> None:
    """A release dir without its completion mark (cut during install) is never current."""
    root = make_root(tmp_path, complete=(OLD,))
    with pytest.raises(layout.LayoutError, match="not completely installed"):
        layout.switch(root, NEW)
    assert layout.current_version(root) == OLD


def test_nothing_to_do_without_a_marker(tmp_path: Path) -> None:
    """Without a marker the program changes nothing (it runs on every timer tick)."""
    root = make_root(tmp_path)
    assert layout.rollback(root, "unit-failed") == "no update under way"
    assert layout.current_version(root) == OLD


def test_deadline_reason_waits_for_the_deadline(tmp_path: Path) -> None:
    """The timer does nothing while the new release is still within its deadline."""
    root = make_root(tmp_path)
    marker = begin_switch(root, OLD, NEW, 300)
    outcome = layout.rollback(root, "deadline", now=marker["deadline"] - 10)
    assert "on trial" in outcome
    assert layout.current_version(root) == NEW
    assert (root / layout.MARKER).exists()


def test_deadline_passed_rolls_back_and_records_why(tmp_path: Path) -> None:
    """Past the deadline the previous release comes back, with a note saying why."""
    root = make_root(tmp_path)
    marker = begin_switch(root, OLD, NEW, 300)
    outcome = layout.rollback(root, "deadline", now=marker["deadline"] + 1)
    assert outcome.startswith(f"rolled back from {NEW} to {OLD}")
    assert layout.current_version(root) == OLD
    assert not (root / layout.MARKER).exists()
    note = json.loads((root / layout.NOTE).read_text())
    assert note["outcome"] == "rolled_back" and note["from"] == NEW and note["to"] == OLD
    assert "did not report healthy" in note["reason"]


def test_reboot_during_the_trial_gives_one_fresh_period(tmp_path: Path) -> None:
    """A power cut during the trial: in the next boot the deadline (passed while the
    power was off) is renewed once, so the release gets its chance; the timer then
    waits instead of rolling back."""
    root = make_root(tmp_path)
    marker = begin_switch(root, OLD, NEW, 300)
    later = marker["deadline"] + 600
    renewed = layout.renew_after_reboot(root, now=later, booted=later - 20)
    assert renewed is not None and renewed["renewed"] is True
    assert renewed["deadline"] == pytest.approx(later + 300)
    assert layout.rollback(root, "deadline", now=later + 10).startswith(
        f"update to {NEW} on trial")
    assert layout.current_version(root) == NEW


def test_second_reboot_during_the_trial_rolls_back(tmp_path: Path) -> None:
    """Only one renewal: a release that takes the machine down again goes back at its
    (renewed) deadline."""
    root = make_root(tmp_path)
    marker = begin_switch(root, OLD, NEW, 300)
    later = marker["deadline"] + 600
    layout.renew_after_reboot(root, now=later, booted=later - 20)
    again = layout.renew_after_reboot(root, now=later + 900, booted=later + 880)
    assert again is not None and again["deadline"] == pytest.approx(later + 300)
    assert layout.rollback(root, "deadline", now=later + 901).startswith("rolled back")
    assert layout.current_version(root) == OLD


def test_same_boot_keeps_the_deadline(tmp_path: Path) -> None:
    """Without a reboot since the switch the marker is left as it is."""
    root = make_root(tmp_path)
    marker = begin_switch(root, OLD, NEW, 300)
    assert layout.renew_after_reboot(root, now=marker["deadline"] + 5) == marker


def test_unit_failure_rolls_back_at_once(tmp_path: Path) -> None:
    """OnFailure= (crash loop, import error) does not wait for the deadline."""
    root = make_root(tmp_path)
    begin_switch(root, OLD, NEW, 300)
    layout.rollback(root, "unit-failed")
    assert layout.current_version(root) == OLD
    assert "kept failing to start" in json.loads((root / layout.NOTE).read_text())["reason"]


def test_marker_without_switch_is_abandoned(tmp_path: Path) -> None:
    """A marker whose switch never happened is dropped and the running release stays."""
    root = make_root(tmp_path)
    layout.write_json(root / layout.MARKER, {"previous": OLD, "new": NEW, "deadline": 0})
    outcome = layout.rollback(root, "deadline")
    assert "interrupted before the switch" in outcome
    assert layout.current_version(root) == OLD
    assert json.loads((root / layout.NOTE).read_text())["outcome"] == "abandoned"


def test_missing_previous_release_is_not_switched_to(tmp_path: Path) -> None:
    """If the previous release is gone the new one stays and the note says so."""
    root = make_root(tmp_path)
    begin_switch(root, OLD, NEW, 300)
    (root / "releases" / OLD / layout.COMPLETE).unlink()
    outcome = layout.rollback(root, "unit-failed")
    assert outcome.startswith("cannot roll back")
    assert layout.current_version(root) == NEW
    assert json.loads((root / layout.NOTE).read_text())["outcome"] == "stuck"


def test_prune_keeps_only_the_named_releases(tmp_path: Path) -> None:
    """Old releases beyond the running and the previous one are removed."""
    root = make_root(tmp_path)
    (root / "releases" / "0.0.9" / "bin").mkdir(parents=True)
    assert layout.prune(root, {OLD, NEW}) == ["0.0.9"]
    assert sorted(p.name for p in (root / "releases").iterdir()) == [OLD, NEW]


def test_installed_lists_complete_releases_in_version_order(tmp_path: Path) -> None:
    """Only complete releases count (a half-built one cannot be rolled back to), in
    version order, not name order; the staging dir is not a release."""
    root = make_root(tmp_path, complete=(OLD,))
    for version in ("0.10.0", "0.9.0"):
        (root / "releases" / version / "bin").mkdir(parents=True)
        (root / "releases" / version / "bin" / "clgwd").write_text("#!/bin/sh\n")
        (root / "releases" / version / layout.COMPLETE).write_text("1\n")
    (root / "releases" / ".staging").mkdir()
    assert layout.installed(root) == [OLD, "0.9.0", "0.10.0"]
    assert layout.installed(tmp_path / "nothing") == []


def test_program_imports_only_the_standard_library() -> None:
    """The rollback program must run when clgwd itself cannot be imported."""
    tree = ast.parse(SCRIPT.read_text())
    modules = {alias.name.split(".")[0] for node in ast.walk(tree)
               if isinstance(node, ast.Import) for alias in node.names}
    modules |= {node.module.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module}
    assert modules <= set(sys.stdlib_module_names) | {"__future__"}, modules


def _program(root: Path, *args: str, journal: bool = False
             ) -> subprocess.CompletedProcess[str]:
    python = SYSTEM_PYTHON if Path(SYSTEM_PYTHON).exists() else sys.executable
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    if journal:
        env["JOURNAL_STREAM"] = "8:12345"  # what systemd sets when stdout is the journal
    return subprocess.run([python, "-I", str(SCRIPT), "--root", str(root), "--no-restart",
                           *args], capture_output=True, text=True, timeout=60, check=False,
                          cwd="/", env=env)


def test_journal_lines_carry_their_level(tmp_path: Path) -> None:
    """Under systemd each line starts with its syslog level, so the deadline unit's
    LogLevelMax=warning drops "nothing to do" and "still on trial" (every 30 s) and
    keeps a rollback (warning) and a failure (error); on a terminal, no prefix."""
    root = make_root(tmp_path)
    assert _program(root, journal=True).stdout == "<6>clgwd-rollback: no update under way\n"
    begin_switch(root, OLD, NEW, 300)
    assert _program(root, "--reason", "deadline", journal=True).stdout.startswith(
        f"<6>clgwd-rollback: update to {NEW} on trial for ")
    rolled = _program(root, "--reason", "unit-failed", journal=True)
    assert rolled.stdout.startswith(f"<4>clgwd-rollback: rolled back from {NEW} to {OLD}")
    (root / "current").unlink()
    (root / "current").symlink_to("/usr")
    (root / layout.MARKER).write_text(json.dumps({"previous": OLD, "new": NEW}))
    broken = _program(root, "--reason", "unit-failed", journal=True)
    assert broken.returncode == 1 and broken.stderr.startswith("<3>clgwd-rollback: ")
    plain = _program(make_root(tmp_path / "other"))
    assert plain.stdout == "clgwd-rollback: no update under way\n"


def test_outcome_levels() -> None:
    """A rollback that cannot happen is an error; an abandoned update a warning."""
    assert layout.outcome_level("cannot roll back: release ? is not installed") == 3
    assert layout.outcome_level(
        "update to 0.2.0 was interrupted before the switch; 0.1.0 stays") == 4
    assert layout.outcome_level("rollback to 0.1.0 already done") == 4


def test_program_runs_standalone_with_the_system_python(tmp_path: Path) -> None:
    """clgwd-rollback in isolated mode (no clgwd importable) rolls a failed unit back."""
    root = make_root(tmp_path)
    begin_switch(root, OLD, NEW, 300)
    result = _program(root, "--reason", "unit-failed")
    assert result.returncode == 0, result.stderr
    assert f"rolled back from {NEW} to {OLD}" in result.stdout
    assert layout.current_version(root) == OLD


def test_program_reports_a_broken_layout(tmp_path: Path) -> None:
    """A current that is not a release link is reported, exit 1."""
    root = make_root(tmp_path)
    begin_switch(root, OLD, NEW, 300)
    (root / "current").unlink()
    (root / "current").symlink_to("/usr")
    result = _program(root, "--reason", "unit-failed")
    assert result.returncode == 1
    assert "not releases/<version>" in result.stderr


# -- power cuts ------------------------------------------------------------------------------

_CHILD = r"""
import importlib.util, os, sys, time
from pathlib import Path
root, cut_at, phase = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
spec = importlib.util.spec_from_file_location("rb", sys.argv[4])
rb = importlib.util.module_from_spec(spec); spec.loader.exec_module(rb)
count = 0
def wrap(fn):
    def inner(*args, **kwargs):
        global count
        count += 1
        if count == cut_at:
            print("CUT", flush=True)
            time.sleep(120)
        return fn(*args, **kwargs)
    return inner
for name in ("replace", "symlink", "fsync", "unlink", "rename"):
    setattr(os, name, wrap(getattr(os, name)))
if phase == "switch":
    now = time.time()
    rb.write_json(root / rb.MARKER, {"previous": "0.1.0", "new": "0.2.0",
                                     "started_at": now, "deadline": now + 300})
    rb.switch(root, "0.2.0")
else:
    rb.rollback(root, "unit-failed")
print("DONE", count, flush=True)
"""


def _run_child(root: Path, cut_at: int, phase: str) -> int | None:
    """Run the phase; with ``cut_at`` kill -9 it at that file-system call. Returns the
    number of calls when it ran to the end."""
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(root), str(cut_at), phase,
                             str(SCRIPT)], stdout=subprocess.PIPE, text=True)
    with proc:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        if line and line[0] == "CUT":
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            return None
        proc.wait(timeout=30)
    assert line and line[0] == "DONE", line
    return int(line[1])


def _prepare(tmp: Path, phase: str) -> Path:
    root = make_root(tmp)
    if phase == "rollback":
        begin_switch(root, OLD, NEW, 300)
    return root


@pytest.mark.parametrize("phase", ["switch", "rollback"])
def test_power_cut_at_every_step_leaves_a_working_release(tmp_path: Path,
                                                          phase: str) -> None:
    """kill -9 at each file-system call of the switch (marker, link) or of the rollback,
    then what systemd runs after the failure: the previous release is current, complete,
    the marker is gone, and a new update can start again from there."""
    steps = _run_child(_prepare(tmp_path / "dry", phase), 0, phase)
    assert steps is not None and steps >= 4
    started = time.monotonic()
    for cut in range(1, steps + 1):
        root = _prepare(tmp_path / f"cut{cut}", phase)
        assert _run_child(root, cut, phase) is None, f"step {cut} was not reached"
        result = _program(root, "--reason", "unit-failed")
        assert result.returncode == 0, (cut, result.stderr)
        assert layout.current_version(root) == OLD, (cut, result.stdout)
        assert layout.is_complete(root, OLD)
        assert not (root / layout.MARKER).exists(), cut
        begin_switch(root, OLD, NEW, 300)  # leftovers do not block the next update
        assert layout.current_version(root) == NEW
    print(f"\n{phase}: {steps} cut points checked in {time.monotonic() - started:.1f} s")


def test_planted_symlink_is_not_followed(tmp_path: Path) -> None:
    """The program runs as root in a directory the daemon's user can write: a symlink
    planted at the note's temp path is replaced, never written through."""
    root = make_root(tmp_path)
    begin_switch(root, OLD, NEW, 300)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (root / f".{layout.NOTE}.tmp").symlink_to(victim)
    layout.rollback(root, "unit-failed")
    assert victim.read_text() == "precious\n"
    assert json.loads((root / layout.NOTE).read_text())["outcome"] == "rolled_back"
