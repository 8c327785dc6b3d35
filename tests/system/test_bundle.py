"""Release bundles: signing, verification and every refusal (clgwd/system/bundle.py)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from clgwd.system import bundle
from clgwd.system.bundle import BundleInvalid, ReleaseKeyError

WHEELS = {"clgwd-0.2.0-py3-none-any.whl": b"clgwd wheel bytes" * 50,
          "aiohttp-3.10.0-cp311-cp311-linux_x86_64.whl": b"dependency" * 70}


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def wheels(tmp_path: Path) -> list[Path]:
    out = []
    for name, data in WHEELS.items():
        path = tmp_path / "in" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        out.append(path)
    return out


@pytest.fixture
def good(tmp_path: Path, wheels: list[Path], key: Ed25519PrivateKey) -> Path:
    return bundle.build_bundle(wheels, "0.2.0", key, tmp_path / "out")


def _files(contents: dict[str, bytes]) -> dict[str, dict[str, object]]:
    return {f"wheels/{n}": {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)}
            for n, d in contents.items()}


def _manifest(listing: dict[str, dict[str, object]], **override: object) -> bytes:
    data: dict[str, object] = {"format": bundle.FORMAT, "version": "0.2.0",
                               "created_at": "2026-12-07T00:00:00+00:00", "python": "3.11",
                               "machine": "x86_64", "files": listing}
    data.update(override)
    return json.dumps(data).encode()


def _craft(path: Path, members: list[tuple[str, bytes]], *,
           symlink: str | None = None) -> Path:
    """A tar with exactly these members (and optionally a symlink member at the end)."""
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if symlink is not None:
            info = tarfile.TarInfo(symlink)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
    return path


def _signed(key: Ed25519PrivateKey, manifest: bytes) -> list[tuple[str, bytes]]:
    return [(bundle.MANIFEST, manifest),
            (bundle.SIGNATURE, key.sign(bundle.SIGNED_PREFIX + manifest))]


def _wheel_members(contents: dict[str, bytes]) -> list[tuple[str, bytes]]:
    return [(f"wheels/{n}", d) for n, d in contents.items()]


def _refusal(path: Path, key: Ed25519PrivateKey, **kwargs: object) -> str:
    with pytest.raises(BundleInvalid) as info:
        bundle.verify_bundle(path, key.public_key(), **kwargs)  # type: ignore[arg-type]
    return info.value.message


def test_signed_bundle_verifies_and_unpacks(good: Path, key: Ed25519PrivateKey,
                                            tmp_path: Path) -> None:
    """A freshly built bundle verifies; unpacking leaves byte-identical wheels."""
    manifest = bundle.verify_bundle(good, key.public_key(), unpack_to=tmp_path / "u")
    assert manifest.version == "0.2.0"
    assert set(manifest.files) == {f"wheels/{n}" for n in WHEELS}
    for name, data in WHEELS.items():
        assert (tmp_path / "u" / "wheels" / name).read_bytes() == data


def test_other_key_is_a_bad_signature(good: Path) -> None:
    """A bundle checked against another release key is refused as a bad signature."""
    assert "bad signature" in _refusal(good, Ed25519PrivateKey.generate())


def test_altered_manifest_is_a_bad_signature(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    """Changing the manifest after signing (a new hash for a swapped wheel) breaks it."""
    files = _files(WHEELS)
    signature = key.sign(bundle.SIGNED_PREFIX + _manifest(files))
    evil = dict(WHEELS, **{"clgwd-0.2.0-py3-none-any.whl": b"evil"})
    path = _craft(tmp_path / "b.tar", [(bundle.MANIFEST, _manifest(_files(evil))),
                                       (bundle.SIGNATURE, signature),
                                       *_wheel_members(evil)])
    assert "bad signature" in _refusal(path, key)


def test_wrong_hash_names_the_file(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    """A wheel whose bytes differ from the signed manifest is refused by name."""
    altered = dict(WHEELS)
    name = "aiohttp-3.10.0-cp311-cp311-linux_x86_64.whl"
    altered[name] = bytes(reversed(WHEELS[name]))  # same size, other bytes
    path = _craft(tmp_path / "b.tar", _signed(key, _manifest(_files(WHEELS)))
                  + _wheel_members(altered))
    message = _refusal(path, key)
    assert f"wheels/{name}" in message and "SHA-256" in message


def test_size_mismatch_names_the_file(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    """A wheel of another size than the manifest says is refused by name."""
    altered = dict(WHEELS, **{"clgwd-0.2.0-py3-none-any.whl": b"short"})
    path = _craft(tmp_path / "b.tar", _signed(key, _manifest(_files(WHEELS)))
                  + _wheel_members(altered))
    assert "wheels/clgwd-0.2.0-py3-none-any.whl: 5 bytes" in _refusal(path, key)


def test_missing_file_is_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    """A wheel listed in the manifest but absent from the tar is refused by name."""
    present = {"clgwd-0.2.0-py3-none-any.whl": WHEELS["clgwd-0.2.0-py3-none-any.whl"]}
    path = _craft(tmp_path / "b.tar", _signed(key, _manifest(_files(WHEELS)))
                  + _wheel_members(present))
    message = _refusal(path, key)
    assert "aiohttp-3.10.0" in message and "missing" in message


def test_extra_file_is_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    """A wheel in the tar that the manifest does not list is refused by name."""
    path = _craft(tmp_path / "b.tar", _signed(key, _manifest(_files(WHEELS)))
                  + _wheel_members(WHEELS) + [("wheels/smuggled-1.0-py3-none-any.whl", b"x")])
    assert "smuggled-1.0" in _refusal(path, key)


@pytest.mark.parametrize("cut", [0.1, 0.5, 0.97, 0.9999])
def test_truncated_bundle_is_refused(good: Path, key: Ed25519PrivateKey, tmp_path: Path,
                                     cut: float) -> None:
    """A download cut short anywhere before the last byte of the last wheel is refused,
    never half-accepted (the tar's zero padding after it carries nothing)."""
    data = good.read_bytes()
    with tarfile.open(good) as tar:
        last = tar.getmembers()[-1]
    content_end = last.offset_data + last.size
    short = tmp_path / "short.tar"
    short.write_bytes(data[:int(content_end * cut)])
    with pytest.raises(BundleInvalid):
        bundle.verify_bundle(short, key.public_key())


@pytest.mark.parametrize(("override", "field"), [
    ({"format": "zip"}, "format"),
    ({"version": "1.0-beta"}, "version"),
    ({"version": 2}, "version"),
    ({"files": []}, "files"),
    ({"files": {"wheels/clgwd-0.2.0-py3-none-any.whl": {"sha256": "00", "size": 1}}},
     "files.wheels/clgwd"),
    ({"files": {"../x.whl": {"sha256": "0" * 64, "size": 1}}}, "files"),
    ({"files": {"wheels/other-1-py3-none-any.whl": {"sha256": "0" * 64, "size": 1}}},
     "no clgwd wheel"),
    ({"extra": 1}, "extra"),
])
def test_malformed_manifest_is_refused(tmp_path: Path, key: Ed25519PrivateKey,
                                       override: dict[str, object], field: str) -> None:
    """A correctly signed manifest that breaks the format is refused naming the field."""
    path = _craft(tmp_path / "b.tar", _signed(key, _manifest(_files(WHEELS), **override))
                  + _wheel_members(WHEELS))
    message = _refusal(path, key)
    assert "manifest.json" in message and field in message


def test_manifest_that_is_not_json_is_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    """A signed manifest that is not JSON is refused as such."""
    path = _craft(tmp_path / "b.tar", _signed(key, b"{not json"))
    assert "not valid JSON" in _refusal(path, key)


@pytest.mark.parametrize("name", ["../evil.whl", "/etc/cron.d/evil", "wheels/../../x.whl",
                                  "wheels/./clgwd.whl", "wheels\\..\\x.whl"])
def test_path_traversal_is_refused(tmp_path: Path, key: Ed25519PrivateKey,
                                   name: str) -> None:
    """Members with absolute paths, .. or backslashes are refused before anything is written."""
    path = _craft(tmp_path / "b.tar", [*_signed(key, _manifest(_files(WHEELS))), (name, b"x")])
    with pytest.raises(BundleInvalid) as info:
        bundle.verify_bundle(path, key.public_key(), unpack_to=tmp_path / "u")
    assert "unsafe path" in info.value.message or "unexpected file" in info.value.message
    assert not (tmp_path / "evil.whl").exists()
    assert list((tmp_path / "u" / "wheels").iterdir()) == []


def test_symlink_member_is_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    """A link inside the bundle is refused (it could point outside the unpack dir)."""
    path = _craft(tmp_path / "b.tar", _signed(key, _manifest(_files(WHEELS))),
                  symlink="wheels/link-1.0-py3-none-any.whl")
    assert "not a regular file" in _refusal(path, key)


def test_manifest_must_come_first(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    """Wheels before the signed manifest are refused (the signature is checked first)."""
    path = _craft(tmp_path / "b.tar", _wheel_members(WHEELS)
                  + _signed(key, _manifest(_files(WHEELS))))
    assert "must start with manifest.json" in _refusal(path, key)


def test_oversize_bundle_is_refused(good: Path, key: Ed25519PrivateKey) -> None:
    """A bundle over the size cap is refused before it is read."""
    assert "limit" in _refusal(good, key, max_bytes=1000)


def test_not_a_tar_is_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    """Random bytes are refused as not a release bundle."""
    path = tmp_path / "junk.tar"
    path.write_bytes(b"\x00junk" * 300)
    assert "not a release bundle" in _refusal(path, key)


def _pem_public(private: object) -> bytes:
    return private.public_key().public_bytes(  # type: ignore[attr-defined,no-any-return]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_wrong_key_type_is_refused(tmp_path: Path) -> None:
    """An EC public key is refused as the wrong kind of release key."""
    path = tmp_path / "ec.pem"
    path.write_bytes(_pem_public(ec.generate_private_key(ec.SECP256R1())))
    with pytest.raises(ReleaseKeyError, match="must be Ed25519"):
        bundle.load_public_key(path)


def test_private_key_for_verify_is_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    """Verification with the private key file explains that the public key is needed."""
    path = tmp_path / "priv.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    with pytest.raises(ReleaseKeyError, match="private key"):
        bundle.load_public_key(path)


def test_build_with_ec_private_key_is_refused(tmp_path: Path) -> None:
    """Building with a non-Ed25519 private key is refused."""
    path = tmp_path / "ec.pem"
    path.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    with pytest.raises(ReleaseKeyError, match="must be Ed25519"):
        bundle.load_private_key(path)


@pytest.mark.parametrize(("text", "ok"), [("1.2.3", True), ("0.1.0", True), ("10", True),
                                          ("1.2.3.4", True), ("1.2.3.4.5", False),
                                          ("01.2", False), ("1.2-rc1", False), ("", False)])
def test_version_format(text: str, ok: bool) -> None:
    """Release versions are 1-4 dot-separated integers without leading zeros."""
    if ok:
        assert bundle.parse_version(text) == tuple(int(p) for p in text.split("."))
    else:
        with pytest.raises(BundleInvalid, match="version"):
            bundle.parse_version(text)


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=10), inner, max_size=6),
                    max_leaves=20))
def test_manifest_parser_only_raises_bundle_invalid(value: object) -> None:
    """Any JSON document is either a manifest or a BundleInvalid, never another error."""
    with contextlib.suppress(BundleInvalid):
        bundle.parse_manifest(json.dumps(value).encode())


def _write_keys(tmp_path: Path, key: Ed25519PrivateKey) -> tuple[Path, Path]:
    private, public = tmp_path / "release.pem", tmp_path / "release.pub.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(_pem_public(key))
    return private, public


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clgwd", "release", *args],
                          capture_output=True, text=True, timeout=600, check=False)


def test_cli_verify_names_the_failing_file(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    """clgwd release verify exits 1 and names the altered wheel; 0 on a good bundle."""
    _, public = _write_keys(tmp_path, key)
    good = bundle.build_bundle([tmp_path / "w" / n for n in _write_wheels(tmp_path)],
                               "0.2.0", key, tmp_path / "out")
    ok = _cli("verify", str(good), "--key", str(public))
    assert ok.returncode == 0, ok.stderr
    assert "OK: clgwd 0.2.0" in ok.stdout
    altered = dict(WHEELS, **{"clgwd-0.2.0-py3-none-any.whl":
                              bytes(reversed(WHEELS["clgwd-0.2.0-py3-none-any.whl"]))})
    bad = _craft(tmp_path / "bad.tar", _signed(key, _manifest(_files(WHEELS)))
                 + _wheel_members(altered))
    refused = _cli("verify", str(bad), "--key", str(public))
    assert refused.returncode == 1
    assert "wheels/clgwd-0.2.0-py3-none-any.whl: SHA-256 differs" in refused.stderr


def _write_wheels(tmp_path: Path) -> list[str]:
    (tmp_path / "w").mkdir()
    for name, data in WHEELS.items():
        (tmp_path / "w" / name).write_bytes(data)
    return list(WHEELS)


def test_cli_verify_with_wrong_key_type_exits_2(tmp_path: Path, good: Path) -> None:
    """A non-Ed25519 key file is a usage error (2) with a message saying so."""
    path = tmp_path / "ec.pem"
    path.write_bytes(_pem_public(ec.generate_private_key(ec.SECP256R1())))
    result = _cli("verify", str(good), "--key", str(path))
    assert result.returncode == 2
    assert "Ed25519" in result.stderr


@pytest.mark.slow
def test_cli_build_makes_an_installable_complete_bundle(tmp_path: Path,
                                                        key: Ed25519PrivateKey) -> None:
    """clgwd release build wheels clgwd at the given version plus every dependency,
    prints the bundle path last, and the bundle verifies with the public key."""
    private, public = _write_keys(tmp_path, key)
    result = _cli("build", "--key", str(private), "--out", str(tmp_path / "out"),
                  "--version", "9.8.7")
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip().splitlines()[-1])
    assert path.is_file() and path.parent == tmp_path / "out"
    manifest = bundle.verify_bundle(path, key.public_key())
    assert manifest.version == "9.8.7"
    names = {n.split("/")[1].split("-")[0].lower() for n in manifest.files}
    assert {"clgwd", "aiohttp", "cryptography", "pydantic", "pydantic_core",
            "picows"} <= names  # picows: the image's "fast" extra, shipped by default
    assert "wheels/clgwd-9.8.7-py3-none-any.whl" in manifest.files
    assert _cli("verify", str(path), "--key", str(public)).returncode == 0
