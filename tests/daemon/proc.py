"""Run ``clgwd`` as a real subprocess for tests."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path


def write_config(tmp_path: Path, port: int = 0, extra: str = "") -> Path:
    state = tmp_path / "state"
    config = tmp_path / "clgwd.yaml"
    config.write_text(
        f"state: {{dir: {state}}}\n"
        f"http: {{listen: [{{host: 127.0.0.1, port: {port}}}]}}\n"
        f"control: {{socket: {tmp_path / 'control.sock'}}}\n" + extra,
        encoding="utf-8",
    )
    return config


class DaemonProcess:
    """``python -m clgwd run`` with captured stderr."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, config: Path, *args: str, env: dict[str, str] | None = None,
                    prefix: tuple[str, ...] = ()) -> DaemonProcess:
        full_env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
        full_env.update(env or {})
        proc = await asyncio.create_subprocess_exec(
            *prefix, sys.executable, "-m", "clgwd", "run", "--config", str(config), *args,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=full_env)
        self = cls(proc)
        self._reader = asyncio.ensure_future(self._read())
        return self

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    async def wait_for_line(self, needle: str, timeout: float = 15.0) -> str:
        async with asyncio.timeout(timeout):
            while True:
                for line in self.lines:
                    if needle in line:
                        return line
                if self.proc.returncode is not None:
                    raise AssertionError(f"daemon exited before {needle!r}:\n{self.text}")
                await asyncio.sleep(0.02)

    def send(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    async def wait(self, timeout: float = 15.0) -> int:
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, timeout)
        return code

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        await self.wait()


async def run_cli(*args: str, env: dict[str, str] | None = None,
                  prefix: tuple[str, ...] = ()) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *prefix, sys.executable, "-m", "clgwd", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})})
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
