"""The whole local update cycle with real releases, timed (no image, no systemd).

    .venv/bin/python bench/update_bench.py

Builds four signed bundles of this checkout with ``clgwd release build`` (1.0.0, a good
1.1.0, a 1.2.0 whose daemon raises at start, a 1.3.0 whose cloud link never comes
online), installs 1.0.0 as a real venv under a
temporary release root, enrolls it with an in-process reference cloud on 127.0.0.1 and
runs ``<root>/current/bin/clgwd run`` under a small supervisor that does what the unit
does: start the current release again after exit 75 (RestartSec shortened to 0.5 s),
and after ``BURST`` failed starts run the standalone rollback program as
``OnFailure=clgwd-rollback.service`` would. Then, timed from the moment the release is
published (update available; ``update.apply`` stands in for the update window):

* good release: until ``clgwd update status --json`` reports 1.1.0 confirmed healthy;
* broken release: until 1.1.0 is back and the rollback is recorded;
* unhealthy release: the same, through the health deadline (``HEALTH_TIMEOUT``, the
  shortest allowed, 60 s) and the daemon's own rollback.

The baseline measured in the same run is a plain restart of the daemon until healthy,
so the ratios say what an update costs beyond a restart. All traffic stays on loopback.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from clgwd.cli.common import control_request
from clgwd.refcloud.server import RefCloud
from clgwd.system import releases
from clgwd.system import rollback as layout
from clgwd.system.bundle import load_public_key

CHECKOUT = Path(__file__).resolve().parent.parent
BURST = 3
RESTART_SEC = 0.5
OLD, GOOD, BROKEN, UNHEALTHY = "1.0.0", "1.1.0", "1.2.0", "1.3.0"
HEALTH_TIMEOUT = 60
PATCHES = {
    # The daemon raises as soon as it runs: a crash loop, then OnFailure=.
    BROKEN: ("daemon.py", '    async def run(self) -> int:\n'
                          '        """Run until stopped; returns the process exit code."""\n',
             '        raise RuntimeError("deliberately broken release (update bench)")\n'),
    # The daemon runs but its cloud link never comes online: the health deadline.
    UNHEALTHY: ("link/connection.py",
                "    async def _hello(self, session: Session, enrollment: Enrollment) -> bool:\n",
                '        await session.close(1002, "deliberately unhealthy release")\n'
                "        await session.closed.wait()\n"
                '        await self._back_off("deliberately unhealthy release (update bench)")\n'
                "        return False\n"),
}


class Supervisor:
    """What systemd does for clgwd.service in this cycle (restart, OnFailure=)."""

    def __init__(self, root: Path, config: Path, log: Path) -> None:
        self.root, self.config, self.log = root, config, log
        self.proc: asyncio.subprocess.Process | None = None
        self.stopping = False
        self.rollbacks: list[str] = []
        self.starts = 0

    async def run(self) -> None:
        failures = 0
        while not self.stopping:
            with self.log.open("ab") as log:
                self.starts += 1
                self.proc = await asyncio.create_subprocess_exec(
                    str(self.root / "current" / "bin" / "clgwd"), "run", "--config",
                    str(self.config), stdout=asyncio.subprocess.DEVNULL, stderr=log)
                code = await self.proc.wait()
            if self.stopping:
                return
            failures = 0 if code == 75 else failures + 1
            if failures >= BURST:
                failures = 0
                result = await asyncio.create_subprocess_exec(
                    "/usr/bin/python3", "-I", layout.__file__, "--root", str(self.root),
                    "--reason", "unit-failed", "--no-restart", stdout=asyncio.subprocess.PIPE)
                out, _ = await result.communicate()
                self.rollbacks.append(out.decode().strip())
            await asyncio.sleep(RESTART_SEC)

    async def restart(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)

    async def stop(self) -> None:
        self.stopping = True
        await self.restart()
        if self.proc is not None:
            await self.proc.wait()


async def status(socket: Path) -> dict[str, Any] | None:
    try:
        code, body = await control_request(socket, "POST", "/v1/command/update.status", 5, {})
    except (TimeoutError, OSError, ValueError, aiohttp.ClientError):
        return None  # restarting: nobody answers for a moment
    return body if code == 200 and isinstance(body, dict) else None


async def wait_for(socket: Path, done: Callable[[dict[str, Any]], bool],
                   limit: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < limit:
        view = await status(socket)
        if view is not None and done(view):
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    raise TimeoutError(f"not reached within {limit} s; last status {await status(socket)}")


def confirmed(version: str) -> Callable[[dict[str, Any]], bool]:
    def check(view: dict[str, Any]) -> bool:
        last = view.get("last_update") or {}
        return (view.get("current_version") == version and view.get("trial") is None
                and last.get("ok") is True and last.get("version") == version)
    return check


def rolled_back(frm: str, to: str) -> Callable[[dict[str, Any]], bool]:
    def check(view: dict[str, Any]) -> bool:
        last = view.get("last_update") or {}
        return (view.get("current_version") == to and last.get("ok") is False
                and f"update to {frm} rolled back to {to}" in str(last.get("message")))
    return check


async def build(version: str, private: Path, out: Path, source: Path) -> Path:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "clgwd", "release", "build", "--key", str(private), "--out",
        str(out), "--version", version, "--source", str(source),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out_text, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"release build {version} failed: {err.decode()}")
    return Path(out_text.decode().strip().splitlines()[-1])


def patched_source(tmp: Path, version: str) -> Path:
    """A copy of the checkout with ``PATCHES[version]`` inserted after its anchor line."""
    name, anchor, insert = PATCHES[version]
    copy = tmp / f"src-{version}"
    shutil.copytree(CHECKOUT, copy, ignore=shutil.ignore_patterns(
        ".git", ".venv", "__pycache__", "*.egg-info", ".mypy_cache", ".ruff_cache",
        ".pytest_cache", ".hypothesis", "node_modules"))
    module = copy / "clgwd" / name
    text = module.read_text()
    assert text.count(anchor) == 1, (name, anchor)
    module.write_text(text.replace(anchor, anchor + insert))
    return copy


async def publish(cloud: RefCloud, path: Path) -> None:
    async def chunks() -> Any:
        yield await asyncio.to_thread(path.read_bytes)
    await cloud.releases.publish(chunks(), rollback=False)


async def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="clgwd-update-bench-"))
    cloud: RefCloud | None = None
    supervisor: Supervisor | None = None
    try:
        key = Ed25519PrivateKey.generate()
        private, public = tmp / "release.pem", tmp / "release.pub.pem"
        private.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
        public.write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        started = time.monotonic()
        bundles = {v: await build(v, private, tmp / "bundles", src) for v, src in (
            (OLD, CHECKOUT), (GOOD, CHECKOUT), (BROKEN, patched_source(tmp, BROKEN)),
            (UNHEALTHY, patched_source(tmp, UNHEALTHY)))}
        print(f"built {len(bundles)} bundles in {time.monotonic() - started:.1f} s "
              f"({bundles[GOOD].stat().st_size / 1e6:.1f} MB each)")

        root = tmp / "opt-clgwd"
        (root / "releases").mkdir(parents=True)
        started = time.monotonic()
        await releases.install(root, bundles[OLD], load_public_key(public), 1 << 30, None)
        os.symlink(f"releases/{OLD}", root / "current")
        print(f"installed {OLD} (venv from the bundle's wheels) in "
              f"{time.monotonic() - started:.1f} s")

        cloud = RefCloud(tmp / "cloud")
        await cloud.__aenter__()
        raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw)
        cloud.release_key = base64.b64encode(raw).decode()
        socket = tmp / "control.sock"
        config = tmp / "clgwd.yaml"
        config.write_text(json.dumps({
            "state": {"dir": str(tmp / "state")},
            "http": {"listen": [{"host": "127.0.0.1", "port": 0}],
                     "tls_listen": [{"host": "127.0.0.1", "port": 0}]},
            "control": {"socket": str(socket)},
            "cloud": {"url": cloud.url, "enrollment_ca_file": str(cloud.ca_file)},
            "system": {"release_root": str(root), "release_key_file": str(public),
                       "update_health_timeout": HEALTH_TIMEOUT}}))
        token = tmp / "token"
        token.write_text(await cloud.create_token("acme"))
        enroll = await asyncio.create_subprocess_exec(
            str(root / "current" / "bin" / "clgwd"), "enroll", "--config", str(config),
            "--account", "acme", "--token-file", str(token),
            stdout=asyncio.subprocess.DEVNULL)
        assert await enroll.wait() == 0, "enrollment failed"

        supervisor = Supervisor(root, config, tmp / "daemon.log")
        task = asyncio.create_task(supervisor.run(), name="bench.supervisor")
        first = await wait_for(socket, lambda v: v.get("current_version") == OLD, 60)
        print(f"{OLD} running and answering in {first:.1f} s")
        await asyncio.sleep(1)
        await supervisor.restart()
        await asyncio.sleep(0.3)
        baseline = await wait_for(socket, lambda v: v.get("current_version") == OLD, 60)
        print(f"baseline: plain restart until answering again: {baseline:.2f} s")

        async def timed(version: str, done: Callable[[dict[str, Any]], bool]) -> float:
            """Publish ``version`` (update available), apply, wait for ``done``."""
            assert cloud is not None
            t0 = time.monotonic()
            await publish(cloud, bundles[version])
            await control_request(socket, "POST", "/v1/command/update.apply", 10, {})
            await wait_for(socket, done, 600)
            return time.monotonic() - t0

        good = await timed(GOOD, confirmed(GOOD))
        print(f"update available -> healthy on {GOOD}: {good:.1f} s "
              f"({good / baseline:.1f} x a plain restart)")
        starts = supervisor.starts
        back = await timed(BROKEN, rolled_back(BROKEN, GOOD))
        print(f"update available -> {BROKEN} crash-looped {supervisor.starts - starts - 1} "
              f"times -> rolled back to {GOOD} and answering: {back:.1f} s "
              f"({back / baseline:.1f} x a plain restart)")
        print(f"rollback program said: {supervisor.rollbacks}")
        late = await timed(UNHEALTHY, rolled_back(UNHEALTHY, GOOD))
        print(f"update available -> {UNHEALTHY} runs but its link never comes online -> "
              f"rolled back to {GOOD} at the {HEALTH_TIMEOUT}-s deadline and answering: "
              f"{late:.1f} s ({late / baseline:.1f} x a plain restart)")
        kept = sorted(p.name for p in (root / "releases").iterdir())
        print(f"releases kept: {kept}; current -> {os.readlink(root / 'current')}")
        await supervisor.stop()
        await task
    finally:
        if supervisor is not None:
            await supervisor.stop()
        if cloud is not None:
            await cloud.__aexit__(None, None, None)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
