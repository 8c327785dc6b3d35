"""The reference cloud's release shelf: published bundles and the newest-release answer.

An admin uploads a signed bundle (``clgwd release build``); the cloud reads its
``manifest.json`` only for the version and target (the gateway verifies the signature
and hashes itself: the cloud is not trusted with that), keeps the file under
``<dir>/releases/`` and offers it to gateways in ``release.latest``. A bundle uploaded
with ``rollback`` set is offered even though it is older than what gateways run.
Blocking file work runs in threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import tarfile
import time
from pathlib import Path
from typing import Any, Final

from clgwd.protocol import rpc as p

MAX_UPLOAD: Final = 1 << 30
_VERSION = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9}){0,3}")


class ReleaseRejected(Exception):
    """The upload is not a release bundle (message says why)."""


class ReleaseShelf:
    def __init__(self, directory: Path) -> None:
        self.dir = directory / "releases"
        self.index_path = self.dir / "index.json"
        self._lock = asyncio.Lock()

    async def publish(self, chunks: Any, rollback: bool) -> dict[str, Any]:
        """Store an uploaded bundle (an async iterator of bytes) and offer it."""
        async with self._lock:
            await asyncio.to_thread(self.dir.mkdir, parents=True, exist_ok=True)
            tmp = self.dir / ".upload.part"
            digest, size = hashlib.sha256(), 0
            fh = await asyncio.to_thread(tmp.open, "wb")
            try:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > MAX_UPLOAD:
                        raise ReleaseRejected(f"bundle larger than {MAX_UPLOAD} bytes")
                    digest.update(chunk)
                    await asyncio.to_thread(fh.write, chunk)
            finally:
                await asyncio.to_thread(fh.close)
            try:
                manifest = await asyncio.to_thread(_read_manifest, tmp)
            except ReleaseRejected:
                await asyncio.to_thread(tmp.unlink)
                raise
            version = manifest["version"]
            await asyncio.to_thread(os.replace, tmp, self.dir / f"{version}.tar")
            entry = {"version": version, "size": size, "sha256": digest.hexdigest(),
                     "python": manifest["python"], "machine": manifest["machine"],
                     "rollback": rollback, "published_at": time.time()}
            index = await asyncio.to_thread(self._index)
            index[version] = entry
            await asyncio.to_thread(self._write_index, index)
            return entry

    async def releases(self) -> list[dict[str, Any]]:
        index = await asyncio.to_thread(self._index)
        return sorted(index.values(), key=lambda e: float(e["published_at"]))

    async def latest(self, python: object, machine: object) -> dict[str, Any] | None:
        """The offer for a gateway: the newest rollback-marked upload if it is the last
        one published, else the highest version, for the gateway's Python/machine."""
        fits = [e for e in await self.releases()
                if e["python"] == python and e["machine"] == machine]
        if not fits:
            return None
        chosen = fits[-1] if fits[-1]["rollback"] else max(
            fits, key=lambda e: tuple(int(x) for x in str(e["version"]).split(".")))
        return {"version": chosen["version"], "size": chosen["size"],
                "sha256": chosen["sha256"], "path": f"{p.RELEASES_PATH}{chosen['version']}",
                "rollback": bool(chosen["rollback"])}

    async def file(self, version: str) -> Path | None:
        if not _VERSION.fullmatch(version):
            return None
        path = self.dir / f"{version}.tar"
        return path if await asyncio.to_thread(path.is_file) else None

    def _index(self) -> dict[str, dict[str, Any]]:
        with contextlib.suppress(FileNotFoundError):
            data = json.loads(self.index_path.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                return data
        return {}

    def _write_index(self, index: dict[str, Any]) -> None:
        tmp = self.index_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(index, indent=1), encoding="utf-8")
        os.replace(tmp, self.index_path)


def _read_manifest(path: Path) -> dict[str, str]:
    try:
        with tarfile.open(path, "r:") as tar:
            member = tar.next()
            if member is None or member.name != "manifest.json" or not member.isreg() or \
                    member.size > 1 << 20:
                raise ReleaseRejected("not a release bundle: manifest.json must come first")
            src = tar.extractfile(member)
            assert src is not None
            data = json.loads(src.read())
    except (tarfile.TarError, ValueError, EOFError) as err:
        raise ReleaseRejected(f"not a release bundle ({err})") from None
    fields = ("version", "python", "machine")
    if not isinstance(data, dict) or not all(isinstance(data.get(f), str) for f in fields) \
            or not _VERSION.fullmatch(data["version"]):
        raise ReleaseRejected("manifest.json lacks version, python or machine")
    return {f: data[f] for f in fields}
