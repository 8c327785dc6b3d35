"""One appliance image per test session: the boot test and the update test share it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_program
from tests.image.boot import OVMF_CODE, PROGRAMS, default_image

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def appliance_image() -> Path:
    """``image/build`` from this checkout (never a stale image; the build caches the
    Debian base and the dependency wheels in /var/cache/clgwd-image): the qcow2 path,
    the raw disk beside it."""
    if os.geteuid() != 0:
        pytest.skip("needs root: network namespaces and tap devices")
    for program in (*PROGRAMS, "debootstrap", "mkfs.vfat", "mcopy", "sfdisk", "qemu-img",
                    "debugfs"):
        require_program(program)
    if not OVMF_CODE.exists():
        pytest.skip(f"{OVMF_CODE} is missing (Debian package ovmf)")
    build = subprocess.run([str(ROOT / "image" / "build")], capture_output=True, text=True,
                           timeout=1800, check=False)
    print("\n" + build.stdout)
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    return default_image()
