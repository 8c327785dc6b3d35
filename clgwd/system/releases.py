"""Download, install and switch to a signed release (the daemon's side of an update).

The steps, each safe to cut and to repeat (docs/updates.md):

1. ``download``: GET the bundle from the cloud over mutual TLS into
   ``<state dir>/updates/<version>.part``, resuming with ``Range`` after a cut, refusing
   more than the size cap; the whole file's SHA-256 must match the cloud's offer, then
   it is renamed to ``<version>.tar``.
2. ``install``: verify signature and hashes while unpacking the wheels, create a venv at
   ``releases/<version>`` and ``pip install --no-index`` from those wheels only, smoke
   test ``bin/clgwd version`` and ``check-config``, then write the completion mark. A
   half-built release dir (no mark) is removed and rebuilt.
3. ``switch``: write the marker (previous, new, deadline), then replace ``current``.
   The caller restarts through systemd; the standalone ``rollback`` module (and its
   systemd units) take over from there.

Blocking helpers here run in threads; the public coroutines are loop-safe.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import ssl
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp

from clgwd.errors import ClgwdError
from clgwd.system import rollback as layout
from clgwd.system.bundle import BundleInvalid, Manifest, parse_version, runtime_tag, verify_bundle
from clgwd.system.runner import run_command

_LOGGER = logging.getLogger(__name__)
DOWNLOAD_DIR: Final = "updates"
CHUNK: Final = 1 << 16
INSTALL_TIMEOUT: Final = 900.0
SMOKE_TIMEOUT: Final = 120.0


class UpdateFailed(ClgwdError):
    """One step of an update failed; the message says which and why."""

    code = "update_failed"
    http_status = 502


@dataclass(frozen=True)
class Offer:
    """The cloud's answer to ``release.latest`` (protocol.md §4.6)."""

    version: str
    size: int
    sha256: str
    path: str
    rollback: bool = False

    @classmethod
    def from_json(cls, data: object) -> Offer | None:
        if data is None:
            return None
        if not isinstance(data, dict):
            raise UpdateFailed("the cloud's release.latest answer is not an object")
        version, size, digest, path = (data.get("version"), data.get("size"),
                                       data.get("sha256"), data.get("path"))
        rollback = data.get("rollback", False)
        if not (isinstance(version, str) and isinstance(size, int)
                and not isinstance(size, bool) and size > 0 and isinstance(digest, str)
                and len(digest) == 64 and isinstance(path, str) and path.startswith("/")
                and isinstance(rollback, bool)):
            raise UpdateFailed("the cloud's release.latest answer lacks version, size, "
                               "sha256 or path, or has them in the wrong form")
        try:
            parse_version(version)
        except BundleInvalid as err:
            raise UpdateFailed(f"the cloud offered {err.message}") from None
        return cls(version, size, digest.lower(), path, rollback)

    def as_json(self) -> dict[str, Any]:
        return {"version": self.version, "size": self.size, "sha256": self.sha256,
                "path": self.path, "rollback": self.rollback}


def check_order(running: str, offer: Offer) -> str | None:
    """Why this offer is not installed (None: install it). No downgrade unless the cloud
    marks the release as a rollback release."""
    new, old = parse_version(offer.version), parse_version(running)
    if new == old:
        return f"already on {running}"
    if new < old and not offer.rollback:
        return (f"the cloud offered {offer.version}, older than the running {running}, "
                "without marking it as a rollback release; refused")
    return None


# -- download -------------------------------------------------------------------------------


async def download(base_url: str, tls: ssl.SSLContext, offer: Offer, state_dir: Path, *,
                   max_bytes: int, limit: float) -> Path:
    """The verified-by-digest bundle file, resuming a partial download if one is there."""
    if offer.size > max_bytes:
        raise UpdateFailed(f"release {offer.version} is {offer.size} bytes, over the "
                           f"{max_bytes}-byte limit (system.update_max_bytes)")
    folder = state_dir / DOWNLOAD_DIR
    final = folder / f"{offer.version}.tar"
    part = folder / f"{offer.version}.part"
    await asyncio.to_thread(_prepare_folder, folder, {final.name, part.name})
    if await asyncio.to_thread(final.exists):
        return final
    have = await asyncio.to_thread(_size, part)
    if have > offer.size:
        await asyncio.to_thread(part.unlink)
        have = 0
    if have < offer.size:
        await _fetch(base_url + offer.path, tls, part, (have, offer.size), limit)
    digest = await asyncio.to_thread(_sha256, part)
    if digest != offer.sha256:
        await asyncio.to_thread(part.unlink)
        raise UpdateFailed(f"the downloaded release {offer.version} does not match the "
                           "cloud's SHA-256 (damaged in transit); it will be fetched again")
    await asyncio.to_thread(os.replace, part, final)
    return final


async def _fetch(url: str, tls: ssl.SSLContext, part: Path, span: tuple[int, int],
                 limit: float) -> None:
    have, size = span
    headers = {"Range": f"bytes={have}-"} if have else {}
    client_timeout = aiohttp.ClientTimeout(total=limit, sock_read=60)
    try:
        async with (aiohttp.ClientSession(timeout=client_timeout, trust_env=False) as http,
                    http.get(url, ssl=tls, headers=headers) as resp):
            if resp.status == 200 and have:
                have = 0
            elif resp.status not in (200, 206):
                raise UpdateFailed(f"the cloud answered HTTP {resp.status} to the release "
                                   "download")
            fh = await asyncio.to_thread(part.open, "r+b" if have else "wb")
            try:
                await asyncio.to_thread(fh.seek, have)
                written = have
                async for chunk in resp.content.iter_chunked(CHUNK):
                    written += len(chunk)
                    if written > size:
                        raise UpdateFailed("the release download is larger than the cloud "
                                           f"announced ({size} bytes); stopped")
                    await asyncio.to_thread(fh.write, chunk)
                await asyncio.to_thread(os.fsync, fh.fileno())
            finally:
                await asyncio.to_thread(fh.close)
    except (aiohttp.ClientError, TimeoutError) as err:
        raise UpdateFailed(f"release download interrupted ({type(err).__name__}: {err}); "
                           "the next attempt resumes where it stopped") from None
    if written < size:
        raise UpdateFailed(f"release download ended after {written} of {size} bytes; the "
                           "next attempt resumes where it stopped")


def _prepare_folder(folder: Path, keep: set[str]) -> None:
    """Create the download folder; drop downloads of other versions."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for entry in folder.iterdir():
        if entry.name not in keep:
            entry.unlink(missing_ok=True)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# -- install ----------------------------------------------------------------------------------


async def install(root: Path, bundle: Path, key: Any, max_bytes: int,
                  config_path: Path | None) -> Manifest:
    """Verify ``bundle`` and install it as ``releases/<version>`` (idempotent)."""
    staging = root / layout.RELEASES / ".staging"
    await asyncio.to_thread(shutil.rmtree, staging, True)
    try:
        manifest = await asyncio.to_thread(verify_bundle, bundle, key, max_bytes=max_bytes,
                                           unpack_to=staging)
    except BundleInvalid as err:
        await asyncio.to_thread(bundle.unlink, True)
        raise UpdateFailed(f"release refused: {err.message}") from None
    try:
        python, machine = runtime_tag()
        if (manifest.python, manifest.machine) != (python, machine):
            raise UpdateFailed(f"release {manifest.version} is built for Python "
                               f"{manifest.python} on {manifest.machine}; this gateway runs "
                               f"Python {python} on {machine}")
        if not await asyncio.to_thread(layout.is_complete, root, manifest.version):
            await _build_venv(root, manifest, staging / "wheels", config_path)
    finally:
        await asyncio.to_thread(shutil.rmtree, staging, True)
    return manifest


async def _build_venv(root: Path, manifest: Manifest, wheels: Path,
                      config_path: Path | None) -> None:
    """Every wheel of the bundle (clgwd, its dependencies, the shipped extras), and
    nothing else: no index, no pip configuration."""
    version = manifest.version
    target = layout.release_dir(root, version)
    await asyncio.to_thread(shutil.rmtree, target, True)  # a half-built one from a cut
    steps: list[tuple[str, list[str]]] = [
        ("create the virtual environment", [sys.executable, "-m", "venv", str(target)]),
        ("install the wheels", [str(target / "bin" / "python"), "-m", "pip", "install",
                                "--no-index", "--find-links", str(wheels), "--no-cache-dir",
                                "--disable-pip-version-check", "--quiet",
                                *(str(wheels / name.removeprefix("wheels/"))
                                  for name in sorted(manifest.files))]),
        ("run the new clgwd", [str(target / "bin" / "clgwd"), "version"]),
    ]
    if config_path is not None:
        steps.append(("check the config file with the new release",
                      [str(target / "bin" / "clgwd"), "check-config", str(config_path)]))
    for what, argv in steps:
        started = time.monotonic()
        result = await run_command(argv, INSTALL_TIMEOUT, env=_pip_env())
        _LOGGER.info("Release %s: %s: %s in %.1f s", version, what,
                     "done" if result.ok else "failed", time.monotonic() - started)
        if not result.ok:
            await asyncio.to_thread(shutil.rmtree, target, True)
            raise UpdateFailed(f"release {version}: could not {what}: {result.summary()}")
        if what == "run the new clgwd" and f"clgwd {version}" not in result.output_tail:
            await asyncio.to_thread(shutil.rmtree, target, True)
            raise UpdateFailed(f"release {version}: the installed clgwd reports "
                               f"{' '.join(result.output_tail) or 'nothing'}")
    await asyncio.to_thread(_mark_complete, target)


def _pip_env() -> dict[str, str]:
    """No pip config or PIP_* variables: the bundle's wheels are the only source."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def _mark_complete(target: Path) -> None:
    mark = target / layout.COMPLETE
    with mark.open("w", encoding="utf-8") as fh:
        fh.write(f"{time.time()}\n")
        fh.flush()
        os.fsync(fh.fileno())
    layout.sync_dir(target)


# -- switch -----------------------------------------------------------------------------------


def begin_switch(root: Path, previous: str, new: str, deadline_s: float) -> dict[str, Any]:
    """Marker first, then the atomic switch of ``current`` (blocking)."""
    now = time.time()
    marker = {"previous": previous, "new": new, "started_at": now,
              "deadline": now + deadline_s, "boot_at": layout.boot_time(now)}
    layout.write_json(root / layout.MARKER, marker)
    layout.switch(root, new)
    return marker
