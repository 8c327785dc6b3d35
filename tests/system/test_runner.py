"""Appliance commands run off the loop, with a timeout, their output tail kept."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from clgwd.config import Secret
from clgwd.system.runner import TAIL_LINES, run_command


async def test_success_keeps_the_last_lines() -> None:
    """Exit code 0, the last TAIL_LINES lines of stdout and stderr, in order."""
    result = await run_command(["sh", "-c", "for i in $(seq 1 100); do echo line $i; done; "
                                "echo oops >&2"], 10)
    assert result.ok and result.exit_code == 0
    assert len(result.output_tail) == TAIL_LINES
    assert result.output_tail[-2:] == ("line 100", "oops")
    assert result.as_json()["ok"] is True


async def test_failure_reports_code_and_last_line() -> None:
    result = await run_command(["sh", "-c", "echo disk full; exit 3"], 10)
    assert not result.ok and result.exit_code == 3
    assert result.summary() == "exited with code 3 (disk full)"


async def test_missing_program_is_a_result_not_an_exception(tmp_path: Path) -> None:
    result = await run_command([str(tmp_path / "no-such-tool")], 10)
    assert result.exit_code is None and "cannot start" in result.error


async def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    """A command that forks a child and hangs is killed with its child at the timeout."""
    pid_file = tmp_path / "child.pid"
    started = time.monotonic()
    result = await run_command(["sh", "-c", f"sleep 60 & echo $! > {pid_file}; wait"], 0.5)
    assert time.monotonic() - started < 10
    assert result.exit_code is None and "timed out after" in result.error
    child = int(pid_file.read_text())
    for _ in range(100):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the command's child survived the timeout")


async def test_known_secrets_are_scrubbed_from_output() -> None:
    secret = Secret("s3cr3t-update-token")
    result = await run_command(["echo", f"token={secret.reveal()}"], 10)
    assert result.output_tail == ("token=***",)
