"""scripts/screens.py: one PNG per page step per width, from a demo-like gateway."""

from __future__ import annotations

import asyncio
import runpy
import struct
import sys
from pathlib import Path

import pytest

from tests.conftest import require_program

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "screens.py"
STEPS = ("setup", "gateway", "cloud", "pbx", "connect", "voice", "deployment", "advanced",
         "overview")

pytestmark = [pytest.mark.peers, pytest.mark.slow, pytest.mark.timeout(240)]


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def test_script_writes_a_png_per_step_per_width(tmp_path: Path) -> None:
    """The script drives Chromium through every step at 1280 and 390 px and writes
    ``<step>-<width>.png`` for each: viewport shots of that width, small files."""
    require_program("chromium")
    pytest.importorskip("playwright.async_api")
    out = tmp_path / "screens"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(SCRIPT), "--out", str(out), "--widths", "1280", "390",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(proc.communicate(), 200)
    assert proc.returncode == 0, output.decode(errors="replace")[-3000:]
    assert "wrote 18 screenshots" in output.decode()
    for width in (1280, 390):
        for step in STEPS:
            data = await asyncio.to_thread((out / f"{step}-{width}.png").read_bytes)
            assert _png_size(data)[0] == width, step
            assert len(data) < 300 * 1024, f"{step}-{width}.png is {len(data)} bytes"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{s}-{w}.png" for s in STEPS for w in (1280, 390))


def test_script_says_when_chromium_is_missing(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Without chromium on PATH the script says what to install and exits 69."""
    pytest.importorskip("playwright.async_api")
    monkeypatch.setenv("PATH", str(tmp_path))
    module = runpy.run_path(str(SCRIPT))
    assert module["main"](["--out", str(tmp_path / "x")]) == 69
    assert not (tmp_path / "x").exists()
