"""Signed release bundles: build one from wheels, verify (and unpack) one before install.

A bundle is one uncompressed tar (the wheels are already compressed) with, in order:

- ``manifest.json``: ``{"format": "clgwd-release/1", "version", "created_at",
  "python": "3.11", "machine": "x86_64", "files": {"wheels/<name>.whl":
  {"sha256", "size"}}}``;
- ``manifest.sig``: the raw 64-byte Ed25519 signature of ``SIGNED_PREFIX +
  manifest.json`` (the prefix keeps a release signature from meaning anything else);
- ``wheels/*.whl``: clgwd and every dependency, so the gateway installs offline.

Verification reads the tar once, as a stream: the signature is checked before any wheel
is read, each wheel is hashed as it passes (and written to ``unpack_to`` if given), and
every refusal names what failed: the file whose hash differs, a missing or unlisted
file, a bad signature, an unsafe member name, a bundle over the size cap. Blocking:
call through ``asyncio.to_thread``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import platform
import re
import sys
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from clgwd.errors import ClgwdError

FORMAT: Final = "clgwd-release/1"
MANIFEST: Final = "manifest.json"
SIGNATURE: Final = "manifest.sig"
SIGNED_PREFIX: Final = b"clgwd release manifest v1\n"
MAX_MANIFEST_BYTES: Final = 1 << 20
MAX_MEMBERS: Final = 500
DEFAULT_MAX_BYTES: Final = 512 << 20
"""Largest bundle accepted (the appliance's download cap uses the same default)."""
_WHEEL_NAME = re.compile(r"wheels/[A-Za-z0-9][A-Za-z0-9._+\-]{0,200}\.whl")
_VERSION = re.compile(r"(0|[1-9][0-9]{0,8})(\.(0|[1-9][0-9]{0,8})){0,3}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK: Final = 1 << 16


class BundleInvalid(ClgwdError):
    """A release bundle failed verification; the message names what failed."""

    code = "release_invalid"
    http_status = 422


class ReleaseKeyError(ClgwdError):
    """A release key file is missing, not PEM, or not the right kind of Ed25519 key."""

    code = "release_key_invalid"
    http_status = 422


@dataclass(frozen=True)
class Manifest:
    version: str
    created_at: str
    python: str
    machine: str
    files: Mapping[str, tuple[str, int]]
    """Member name -> (SHA-256 hex, size)."""

    def as_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": self.version, "created_at": self.created_at,
                "python": self.python, "machine": self.machine,
                "files": {name: {"sha256": digest, "size": size}
                          for name, (digest, size) in sorted(self.files.items())}}

    @property
    def total_size(self) -> int:
        return sum(size for _, size in self.files.values())


# -- versions -----------------------------------------------------------------------------


def parse_version(text: str) -> tuple[int, ...]:
    """``"1.2.3"`` -> ``(1, 2, 3)``; release versions are 1-4 dot-separated integers."""
    if not _VERSION.fullmatch(text):
        raise BundleInvalid(f"version {text!r} is not a release version such as 1.4.2 "
                            "(one to four numbers separated by dots)")
    return tuple(int(part) for part in text.split("."))


def runtime_tag() -> tuple[str, str]:
    """(Python major.minor, machine) of this interpreter: wheels must match both."""
    return f"{sys.version_info.major}.{sys.version_info.minor}", platform.machine()


# -- keys -----------------------------------------------------------------------------------


def load_private_key(path: Path) -> Ed25519PrivateKey:
    key = _load_pem(path, private=True)
    if not isinstance(key, Ed25519PrivateKey):
        raise ReleaseKeyError(f"{path}: a {_kind(key)} key; the release key must be Ed25519 "
                              "(openssl genpkey -algorithm ed25519)")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    return public_key_from_pem(_read_key(path), str(path))


def public_key_from_pem(data: bytes, where: str) -> Ed25519PublicKey:
    if b"PRIVATE KEY" in data:
        raise ReleaseKeyError(f"{where}: this is a private key; verification needs the "
                              "public key (openssl pkey -in KEY -pubout)")
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError:
        raise ReleaseKeyError(f"{where}: not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ReleaseKeyError(f"{where}: a {_kind(key)} key; the release key must be Ed25519")
    return key


def public_key_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def _read_key(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ReleaseKeyError(f"{path}: cannot read the key: {err.strerror}") from None
    if len(data) > 64 << 10:
        raise ReleaseKeyError(f"{path}: too large to be a key file")
    return data


def _load_pem(path: Path, *, private: bool) -> object:
    data = _read_key(path)
    if private and b"PRIVATE KEY" not in data:
        raise ReleaseKeyError(f"{path}: not a PEM private key (build needs the private key)")
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as err:
        raise ReleaseKeyError(f"{path}: not a usable unencrypted PEM private key "
                              f"({type(err).__name__})") from None


def _kind(key: object) -> str:
    return type(key).__name__.removeprefix("_").replace("PrivateKey", "").replace(
        "PublicKey", "") or "unknown"


# -- build ------------------------------------------------------------------------------------


def build_bundle(wheels: list[Path], version: str, key: Ed25519PrivateKey,
                 out_dir: Path) -> Path:
    """Write ``clgwd-release-<version>.tar`` into ``out_dir`` (atomically) and return it."""
    parse_version(version)
    if not wheels:
        raise BundleInvalid("no wheels to bundle")
    files: dict[str, tuple[str, int]] = {}
    for wheel in wheels:
        name = f"wheels/{wheel.name}"
        if not _WHEEL_NAME.fullmatch(name) or name in files:
            raise BundleInvalid(f"{wheel.name}: not a wheel file name, or given twice")
        files[name] = (_sha256_file(wheel), wheel.stat().st_size)
    python, machine = runtime_tag()
    manifest = Manifest(version, dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                        python, machine, files)
    body = json.dumps(manifest.as_json(), indent=1, sort_keys=True).encode()
    signature = key.sign(SIGNED_PREFIX + body)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"clgwd-release-{version}.tar"
    tmp = out_dir / f".{target.name}.part"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, MANIFEST, body)
        _add_bytes(tar, SIGNATURE, signature)
        for wheel in sorted(wheels, key=lambda w: w.name):
            info = tarfile.TarInfo(f"wheels/{wheel.name}")
            info.size, info.mode, info.mtime = wheel.stat().st_size, 0o644, 0
            with wheel.open("rb") as src:
                tar.addfile(info, src)
    with tmp.open("rb") as fh:
        os.fsync(fh.fileno())
    tmp.replace(target)
    return target


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# -- verify -----------------------------------------------------------------------------------


def verify_bundle(path: Path, key: Ed25519PublicKey, *, max_bytes: int = DEFAULT_MAX_BYTES,
                  unpack_to: Path | None = None) -> Manifest:
    """Check signature, manifest and every hash; with ``unpack_to``, leave the verified
    wheels in ``unpack_to/wheels/`` (the directory must not exist yet)."""
    try:
        size = path.stat().st_size
    except OSError as err:
        raise BundleInvalid(f"{path}: cannot read the bundle: {err.strerror}") from None
    if size > max_bytes:
        raise BundleInvalid(f"{path.name}: {size} bytes is over the {max_bytes}-byte limit "
                            "for a release bundle")
    if unpack_to is not None:
        (unpack_to / "wheels").mkdir(parents=True)
    with path.open("rb") as fh:
        try:
            return _verify_stream(fh, key, unpack_to)
        except (tarfile.TarError, EOFError) as err:
            raise BundleInvalid(f"{path.name}: the bundle is truncated or not a release "
                                f"bundle ({err})") from None


def _verify_stream(fh: IO[bytes], key: Ed25519PublicKey, unpack_to: Path | None) -> Manifest:
    manifest: Manifest | None = None
    body = b""
    seen: set[str] = set()
    with tarfile.open(fileobj=fh, mode="r|") as tar:
        for count, member in enumerate(tar):
            name = _check_member(member, count)
            if name in seen:
                raise BundleInvalid(f"{name}: appears twice in the bundle")
            seen.add(name)
            if count == 0:
                if name != MANIFEST:
                    raise BundleInvalid(f"the bundle must start with {MANIFEST}, not {name}")
                if member.size > MAX_MANIFEST_BYTES:
                    raise BundleInvalid(f"{MANIFEST}: larger than {MAX_MANIFEST_BYTES} bytes")
                body = _read_all(tar, member)
                continue
            if count == 1:
                if name != SIGNATURE:
                    raise BundleInvalid(f"{SIGNATURE} must follow {MANIFEST}, found {name}")
                signature = _read_all(tar, member)
                try:
                    key.verify(signature, SIGNED_PREFIX + body)
                except InvalidSignature:
                    raise BundleInvalid("bad signature: the manifest was not signed by the "
                                        "release key (altered, or another key)") from None
                manifest = parse_manifest(body)
                continue
            assert manifest is not None
            _check_wheel(tar, member, manifest, unpack_to)
    if manifest is None:
        raise BundleInvalid(f"the bundle lacks {MANIFEST if not body else SIGNATURE}")
    missing = sorted(set(manifest.files) - seen)
    if missing:
        raise BundleInvalid(f"{missing[0]}: listed in the manifest but missing from the "
                            f"bundle ({len(missing)} missing)")
    return manifest


def _check_member(member: tarfile.TarInfo, count: int) -> str:
    if count >= MAX_MEMBERS:
        raise BundleInvalid(f"more than {MAX_MEMBERS} files in the bundle")
    name = member.name
    if name.startswith("/") or "\\" in name or any(part in ("", ".", "..")
                                                     for part in name.split("/")):
        raise BundleInvalid(f"{name!r}: unsafe path in the bundle (absolute or with ..)")
    if not member.isreg():
        raise BundleInvalid(f"{name}: not a regular file (links and devices are refused)")
    if name not in (MANIFEST, SIGNATURE) and not _WHEEL_NAME.fullmatch(name):
        raise BundleInvalid(f"{name}: unexpected file in the bundle (only {MANIFEST}, "
                            f"{SIGNATURE} and wheels/*.whl)")
    return name


def _read_all(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    src = tar.extractfile(member)
    assert src is not None  # regular file
    data = src.read()
    if len(data) != member.size:
        raise BundleInvalid(f"{member.name}: truncated")
    return data


def _check_wheel(tar: tarfile.TarFile, member: tarfile.TarInfo, manifest: Manifest,
                 unpack_to: Path | None) -> None:
    name = member.name
    listed = manifest.files.get(name)
    if listed is None:
        raise BundleInvalid(f"{name}: in the bundle but not listed in the manifest")
    digest_expected, size_expected = listed
    if member.size != size_expected:
        raise BundleInvalid(f"{name}: {member.size} bytes, the manifest says {size_expected}")
    src = tar.extractfile(member)
    assert src is not None
    digest = hashlib.sha256()
    out = None
    if unpack_to is not None:
        out = (unpack_to / name).open("xb")
    try:
        read = 0
        while chunk := src.read(_CHUNK):
            read += len(chunk)
            digest.update(chunk)
            if out is not None:
                out.write(chunk)
        if read != member.size:
            raise BundleInvalid(f"{name}: truncated")
    finally:
        if out is not None:
            out.close()
    if digest.hexdigest() != digest_expected:
        raise BundleInvalid(f"{name}: SHA-256 differs from the manifest (file altered)")


def parse_manifest(body: bytes) -> Manifest:
    """The signed manifest, strictly: every problem names the field."""
    try:
        data = json.loads(body)
    except ValueError as err:
        raise BundleInvalid(f"{MANIFEST}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise BundleInvalid(f"{MANIFEST}: must be a JSON object")
    expected = {"format", "version", "created_at", "python", "machine", "files"}
    if set(data) != expected:
        odd = sorted(set(data) ^ expected)
        raise BundleInvalid(f"{MANIFEST}: unexpected or missing field(s) {', '.join(odd)}")
    if data["format"] != FORMAT:
        raise BundleInvalid(f"{MANIFEST}: format {data['format']!r} is not {FORMAT}")
    for field in ("version", "created_at", "python", "machine"):
        if not isinstance(data[field], str):
            raise BundleInvalid(f"{MANIFEST}: {field} must be a string")
    try:
        parse_version(data["version"])
    except BundleInvalid as err:
        raise BundleInvalid(f"{MANIFEST}: {err.message}") from None
    files = data["files"]
    if not isinstance(files, dict) or not files:
        raise BundleInvalid(f"{MANIFEST}: files must be a non-empty object")
    parsed: dict[str, tuple[str, int]] = {}
    for name, entry in files.items():
        if not _WHEEL_NAME.fullmatch(name):
            raise BundleInvalid(f"{MANIFEST}: files: {name!r} is not wheels/<name>.whl")
        if not isinstance(entry, dict) or set(entry) != {"sha256", "size"} or \
                not isinstance(entry["sha256"], str) or \
                not _SHA256.fullmatch(entry["sha256"]) or \
                not isinstance(entry["size"], int) or isinstance(entry["size"], bool) or \
                entry["size"] < 0:
            raise BundleInvalid(f"{MANIFEST}: files.{name}: must be {{\"sha256\": <64 hex>, "
                                "\"size\": <bytes>}")
        parsed[name] = (entry["sha256"], entry["size"])
    if not any(n.startswith("wheels/clgwd-") for n in parsed):
        raise BundleInvalid(f"{MANIFEST}: files: no clgwd wheel in the release")
    return Manifest(data["version"], data["created_at"], data["python"], data["machine"],
                    parsed)
