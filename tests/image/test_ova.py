"""image/make-ova packages a disk the way VMware imports it."""

from __future__ import annotations

import hashlib
import os
import subprocess
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.conftest import require_program

ROOT = Path(__file__).resolve().parents[2]
OVF = "{http://schemas.dmtf.org/ovf/envelope/1}"
RASD = "{http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData}"


def test_ova_order_manifest_and_descriptor(tmp_path: Path) -> None:
    """Descriptor first, manifest second, then the streamOptimized disk; the manifest's
    hashes match; the OVF asks for EFI firmware, two NICs and the disk's real size."""
    require_program("qemu-img")
    raw = tmp_path / "disk.raw"
    with raw.open("wb") as out:
        out.truncate(8 * 1024 * 1024)
        out.write(b"clgwd test disk")
    ova = tmp_path / "t.ova"
    subprocess.run([str(ROOT / "image" / "make-ova"), str(raw), str(ova), "clgwd-t", "9.9"],
                   check=True, capture_output=True, timeout=120)
    with tarfile.open(ova) as tar:
        members = tar.getmembers()
        assert [m.name for m in members] == ["clgwd-t.ovf", "clgwd-t.mf",
                                             "clgwd-t-disk1.vmdk"]
        files = {m.name: tar.extractfile(m).read() for m in members}  # type: ignore[union-attr]
    assert ova.read_bytes()[257:263] == b"ustar\x00"  # POSIX ustar, as OVF requires
    manifest = dict(line.split("= ") for line in files["clgwd-t.mf"].decode().splitlines())
    for name in ("clgwd-t.ovf", "clgwd-t-disk1.vmdk"):
        assert manifest[f"SHA256({name})"] == hashlib.sha256(files[name]).hexdigest()
    assert files["clgwd-t-disk1.vmdk"][:4] == b"KDMV"  # a VMDK sparse extent
    assert b'createType="streamOptimized"' in files["clgwd-t-disk1.vmdk"][:4096]
    root = ET.fromstring(files["clgwd-t.ovf"])
    disk = root.find(f"{OVF}DiskSection/{OVF}Disk")
    assert disk is not None
    assert disk.get(f"{OVF}capacity") == str(raw.stat().st_size)
    ref = root.find(f"{OVF}References/{OVF}File")
    assert ref is not None
    assert ref.get(f"{OVF}size") == str(len(files["clgwd-t-disk1.vmdk"]))
    items = root.findall(f".//{OVF}VirtualHardwareSection/{OVF}Item")
    nics = [i for i in items if i.findtext(f"{RASD}ResourceType") == "10"]
    assert len(nics) == 2
    assert b'vmw:key="firmware" vmw:value="efi"' in files["clgwd-t.ovf"]


def test_ova_is_reproducible(tmp_path: Path) -> None:
    """The same disk and build time give the same OVA bytes (qemu-img's VMDK carries a
    random content ID; make-ova replaces it with one made of SOURCE_DATE_EPOCH), and the
    VMDK still holds exactly the disk."""
    require_program("qemu-img")
    raw = tmp_path / "disk.raw"
    with raw.open("wb") as out:
        out.truncate(8 * 1024 * 1024)
        out.write(b"clgwd reproducible disk")
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1796678358"}
    made = []
    for name in ("one.ova", "two.ova"):
        subprocess.run([str(ROOT / "image" / "make-ova"), str(raw), str(tmp_path / name),
                        "clgwd-t", "9.9"], check=True, capture_output=True, timeout=120,
                       env=env)
        made.append((tmp_path / name).read_bytes())
    assert made[0] == made[1]
    with tarfile.open(tmp_path / "one.ova") as tar:
        tar.extract("clgwd-t-disk1.vmdk", tmp_path, filter="data")
    vmdk = tmp_path / "clgwd-t-disk1.vmdk"
    assert b"CID=6b1722d6\n" in vmdk.read_bytes()[:4096]  # 1796678358 in hex
    compare = subprocess.run(["qemu-img", "compare", "-f", "vmdk", "-F", "raw", str(vmdk),
                              str(raw)], capture_output=True, text=True, check=False)
    assert compare.returncode == 0, compare.stdout + compare.stderr


def test_a_short_random_cid_still_becomes_eight_digits(tmp_path: Path) -> None:
    """qemu-img does not zero-pad the CID: about one conversion in sixteen writes seven
    digits or fewer, which once made make-ova fail. The rewrite grows the line into the
    descriptor's padding, and the disk still reads back the same."""
    require_program("qemu-img")
    raw = tmp_path / "disk.raw"
    with raw.open("wb") as out:
        out.truncate(8 * 1024 * 1024)
        out.write(b"clgwd short cid")
    vmdk = tmp_path / "d.vmdk"
    subprocess.run(["qemu-img", "convert", "-O", "vmdk", "-o", "subformat=streamOptimized",
                    str(raw), str(vmdk)], check=True, capture_output=True, timeout=60)
    data = bytearray(vmdk.read_bytes())
    at = data.index(b"\nCID=") + 1
    line_end = data.index(b"\n", at)
    text_end = data.index(b"\0", at)
    text = b"CID=abc" + data[line_end:text_end]  # as qemu-img writes it: the text is shorter
    data[at:text_end] = text + b"\0" * (text_end - at - len(text))  # and the padding longer
    vmdk.write_bytes(bytes(data))
    subprocess.run([str(ROOT / "image" / "vmdk-set-cid"), str(vmdk), "1796678358"],
                   check=True, capture_output=True, timeout=30)
    head = vmdk.read_bytes()[:4096]
    assert b"\nCID=6b1722d6\nparentCID=ffffffff\n" in head
    compare = subprocess.run(["qemu-img", "compare", "-f", "vmdk", "-F", "raw", str(vmdk),
                              str(raw)], capture_output=True, text=True, check=False)
    assert compare.returncode == 0, compare.stdout + compare.stderr


def test_set_cid_refuses_a_file_without_a_descriptor(tmp_path: Path) -> None:
    """A file that is not a VMDK is refused in words, not patched."""
    junk = tmp_path / "junk.vmdk"
    junk.write_bytes(b"\0" * 4096)
    done = subprocess.run([str(ROOT / "image" / "vmdk-set-cid"), str(junk), "1"],
                          capture_output=True, text=True, check=False, timeout=30)
    assert done.returncode != 0
    assert "no CID line" in done.stderr
    assert junk.read_bytes() == b"\0" * 4096
