"""Every CLI command exits quietly when its reader went away (``clgwd sync | head``)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import pytest

from clgwd.cli import build_parser


def _commands() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(sub.choices)


async def _run_into_closed_pipe(*args: str, cwd: Path) -> tuple[int, str]:
    """Run ``python -m clgwd ARGS`` with stdout a pipe whose reader is already gone."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "clgwd", *args, stdout=write_end,
            stderr=asyncio.subprocess.PIPE, cwd=cwd)
    finally:
        os.close(write_end)
    _, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, err.decode()


@pytest.mark.slow
@pytest.mark.parametrize("command", _commands())
async def test_help_of_every_command_into_a_closed_pipe(command: str, tmp_path: Path) -> None:
    """`clgwd <command> --help | <gone>`: no traceback, nothing on stderr (argparse
    itself ignores the failed write and exits 0; our own output exits 141)."""
    code, err = await _run_into_closed_pipe(command, "--help", cwd=tmp_path)
    assert err == ""
    assert code in (0, 141)


async def test_command_output_into_a_closed_pipe(tmp_path: Path) -> None:
    """A command that prints its result (version, check-config) ends quietly too."""
    config = tmp_path / "clgwd.yaml"
    config.write_text("{}\n")
    for args in (("version",), ("check-config", str(config))):
        code, err = await _run_into_closed_pipe(*args, cwd=tmp_path)
        assert (code, err) == (141, ""), args


async def test_a_normal_pipe_still_exits_0(tmp_path: Path) -> None:
    """With a reader, the same command prints and exits 0."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "clgwd", "version", stdout=asyncio.subprocess.PIPE, cwd=tmp_path)
    out, _ = await proc.communicate()
    assert proc.returncode == 0 and out.startswith(b"clgwd ")
