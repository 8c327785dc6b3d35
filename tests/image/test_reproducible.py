"""image/build is reproducible: the same checkout gives the same disk, bit for bit.

The session's image (tests/image/conftest.py, the build the boot and update tests use)
and a second build of the raw disk (``--raw-only``: the qcow2 and the OVA are made from it
by ``qemu-img convert`` and ``image/make-ova``, whose own determinism tests/image/test_ova.py
checks) from the same cached Debian base, in another output directory at another time,
must hash the same. On a difference the test names the partition, which is where to look
(the ESP's FAT, the root or /var ext4 image). Slow (one more build, ~1-2 minutes with a
warm cache) and root-only (debootstrap, file owners), like the boot test.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow]


def _build_raw(out: Path, epoch: str) -> Path:
    """One raw-only build into ``out``; returns the disk."""
    env = {**os.environ, "SOURCE_DATE_EPOCH": epoch}
    build = subprocess.run([str(ROOT / "image" / "build"), "--out", str(out), "--raw-only"],
                           capture_output=True, text=True, timeout=1800, check=False, env=env)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    (raw,) = out.glob("clgwd-*.raw")
    return raw


def _partition_hashes(raw: Path) -> dict[str, str]:
    """SHA-256 of each GPT partition, by partition name."""
    table = json.loads(subprocess.run(["sfdisk", "-J", str(raw)], capture_output=True,
                                      text=True, check=True).stdout)
    hashes: dict[str, str] = {}
    with raw.open("rb") as disk:
        for part in table["partitiontable"]["partitions"]:
            disk.seek(part["start"] * 512)
            digest, left = hashlib.sha256(), part["size"] * 512
            while left > 0:
                chunk = disk.read(min(left, 1 << 20))
                digest.update(chunk)
                left -= len(chunk)
            hashes[part["name"]] = digest.hexdigest()
    return hashes


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@pytest.mark.timeout(3600)
def test_a_second_build_gives_the_same_disk(appliance_image: Path, tmp_path: Path) -> None:
    """Build again (another work dir, another wall-clock time): the raw disk is identical
    to the session's; a difference names the partition that holds it."""
    epoch = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%ct"],
                           capture_output=True, text=True, check=False).stdout.strip() or "0"
    first = appliance_image.with_suffix(".raw")
    second = _build_raw(tmp_path / "again", epoch)
    if _file_hash(first) != _file_hash(second):
        ours, theirs = _partition_hashes(first), _partition_hashes(second)
        differing = [name for name in ours if ours[name] != theirs.get(name)]
        pytest.fail(f"two builds differ; partitions: {differing or ['the GPT itself']}")
