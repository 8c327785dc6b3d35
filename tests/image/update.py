"""The whole update cycle inside the booted appliance image, driven like the product is.

``image/test-update`` runs this module (as root); tests/image/test_update.py too. It
reuses the boot harness (tests/image/boot.py: the namespaces, the bridge, dnsmasq,
qemu with UEFI) and adds, all inside the peer namespace (the technician's LAN):

* the reference cloud (``clgwd.refcloud``, in process) on 198.51.100.1:8443, with the
  release key handed to the gateway at enrollment and the bundles published on its shelf;
* a working copy of the built raw disk whose ``/etc/clgwd/clgwd.yaml`` also names that
  cloud (``cloud.url``, its CA) and a short health deadline, written into the root
  file system with ``debugfs`` (no mount); the guest writes to this copy, so a power cut
  (SIGKILL of qemu) and the next boot see the same disk;
* the page API (setup code from the serial console, admin password, enrollment) to
  watch ``/api/v1/update/status`` and the alerts; ``update.apply`` is a cloud command.

Scenarios (each prints its figures):

``cut-install``   kill qemu while the new release is being installed; boot again:
                  healthy on the old release, no trial left.
``cut-switch``    kill qemu right after the switch (the old daemon has stopped, the new
                  one is not answering yet); boot again: a working release, confirmed.
``good``          a good release: "update available" -> healthy on it; the previous
                  release is kept, older ones removed.
``broken``        a release whose daemon raises at start: rolled back by systemd in the
                  guest (OnFailure= or the deadline timer), reason in the alert
                  ``system.update_failed`` and the history.
``cut-download``, ``cut-trial``, ``cut-rollback``  (``--all-cuts``): kill while
                  downloading, while the new release runs on trial, while a broken
                  release crash-loops.

Nothing leaves the namespaces; every process started here is stopped by PID.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Final

import aiohttp
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.image.boot import (
    LAN_PEER,
    PASSWORD,
    ROOT,
    Lab,
    console_values,
    default_image,
    leased,
    log,
    missing_programs,
)

CLOUD_PORT: Final = 8443
ACCOUNT: Final = "acme"
GUEST_CONFIG: Final = "/etc/clgwd/clgwd.yaml"
GUEST_CA: Final = "/etc/clgwd/cloud-ca.pem"
GUEST_JOURNALD: Final = "/etc/systemd/journald.conf.d/90-test-console.conf"
HEALTH_TIMEOUT: Final = 120
"""``system.update_health_timeout`` in the guest: the trial's deadline (TCG is slow)."""
CI_SCENARIOS: Final = ("good", "broken")
ALL_SCENARIOS: Final = ("cut-download", "cut-install", "cut-switch", "cut-trial", "good",
                        "broken", "cut-rollback")
# The daemon raises as soon as it runs (bench/update_bench.py uses the same patch).
BROKEN_PATCH: Final = ("daemon.py", '    async def run(self) -> int:\n'
                       '        """Run until stopped; returns the process exit code."""\n',
                       '        raise RuntimeError("deliberately broken release '
                       '(tests/image/update.py)")\n')


def bump(base: str, step: int) -> str:
    """``0.1.0`` -> ``0.1.<step>``: versions above the image's."""
    parts = base.split(".")
    return ".".join([*parts[:-1], str(int(parts[-1]) + step)])


# --- the orchestrator's part (root namespace): bundles, keys ------------------------------


def build_bundle(version: str, key: Path, out: Path, source: Path) -> Path:
    result = subprocess.run(
        [sys.executable, "-m", "clgwd", "release", "build", "--key", str(key), "--out",
         str(out), "--version", version, "--source", str(source)],
        capture_output=True, text=True, timeout=900, check=False, cwd=ROOT)
    assert result.returncode == 0, f"release build {version}: {result.stderr[-2000:]}"
    return Path(result.stdout.strip().splitlines()[-1])


def broken_source(work: Path) -> Path:
    """A copy of the checkout whose daemon raises at start."""
    name, anchor, insert = BROKEN_PATCH
    copy = work / "src-broken"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(
        ".git", ".venv", "__pycache__", "*.egg-info", ".mypy_cache", ".ruff_cache",
        ".pytest_cache", ".hypothesis", "node_modules", "build"))
    module = copy / "clgwd" / name
    text = module.read_text(encoding="utf-8")
    assert text.count(anchor) == 1, (name, anchor)
    module.write_text(text.replace(anchor, anchor + insert), encoding="utf-8")
    return copy


def release_keys(work: Path) -> None:
    key = Ed25519PrivateKey.generate()
    private, public = work / "release.pem", work / "release.pub.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def raw_public_key_b64(public: Path) -> str:
    key = serialization.load_pem_public_key(public.read_bytes())
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


# --- the disk: a working copy with the cloud in its config (debugfs, no mount) ------------


def partition_offset(disk: Path, name: str) -> int:
    table = json.loads(subprocess.run(["sfdisk", "-J", str(disk)], capture_output=True,
                                      check=True, timeout=60).stdout)
    part = next(p for p in table["partitiontable"]["partitions"] if p["name"] == name)
    return int(part["start"]) * 512


def debugfs(disk: Path, partition: str, commands: list[str], write: bool = False) -> str:
    """Run debugfs ``commands`` on one partition of the raw disk (io option offset=)."""
    spec = f"{disk}?offset={partition_offset(disk, partition)}"
    with tempfile.NamedTemporaryFile("w", suffix=".debugfs") as script:
        script.write("\n".join(commands) + "\n")
        script.flush()
        result = subprocess.run(["debugfs", *(["-w"] if write else []), "-f", script.name,
                                 spec], capture_output=True, text=True, timeout=120,
                                check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def configure_disk(disk: Path, ca_file: Path, work: Path, health_timeout: int) -> None:
    """The appliance config plus the reference cloud and the test's health deadline."""
    config = yaml.safe_load((ROOT / "image" / "clgwd.appliance.yaml").read_text())
    config["cloud"] = {"url": f"https://{LAN_PEER}:{CLOUD_PORT}",
                       "enrollment_ca_file": GUEST_CA}
    config.setdefault("system", {})["update_health_timeout"] = health_timeout
    local = work / "guest-clgwd.yaml"
    local.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    out = debugfs(disk, "root", ["stat /etc/clgwd/clgwd.yaml"])
    gid = next(line.split("Group:")[1].split()[0] for line in out.splitlines()
               if "Group:" in line)
    # The journal on the serial console too: the guest has no shell, and the console log
    # is then what a failure shows (and where a step of the update can be watched).
    journald = work / "90-test-console.conf"
    journald.write_text("[Journal]\nForwardToConsole=yes\nTTYPath=/dev/ttyS0\n"
                        "MaxLevelConsole=info\n", encoding="utf-8")
    commands = [f"write {journald} {GUEST_JOURNALD}", f"sif {GUEST_JOURNALD} uid 0",
                f"sif {GUEST_JOURNALD} gid 0", f"sif {GUEST_JOURNALD} mode 0100644"]
    for local_path, guest_path in ((local, GUEST_CONFIG), (ca_file, GUEST_CA)):
        commands += [f"rm {guest_path}", f"write {local_path} {guest_path}",
                     f"sif {guest_path} uid 0", f"sif {guest_path} gid {gid}",
                     f"sif {guest_path} mode 0100640"]
    debugfs(disk, "root", commands, write=True)
    check = debugfs(disk, "root", [f"cat {GUEST_CONFIG}"])
    assert f"{LAN_PEER}:{CLOUD_PORT}" in check, check


# --- the guest and its page ----------------------------------------------------------------


class Guest:
    """qemu on the working disk: power on, power cut (SIGKILL), the page API."""

    def __init__(self, lab: Lab, smp: int) -> None:
        self.lab, self.smp = lab, smp
        self.boots = 0
        self.ip = ""
        self.page: Page | None = None

    def power_on(self) -> None:
        self.boots += 1
        self.lab.console = self.lab.work / f"console-{self.boots}.log"
        self.lab.boot(self.smp, read_only_root=False, persistent=True)
        log(f"boot {self.boots}: qemu started")

    def power_cut(self) -> None:
        qemu = self.lab.qemu
        assert qemu is not None and qemu.poll() is None, "qemu is not running"
        os.killpg(qemu.pid, signal.SIGKILL)
        qemu.wait(timeout=30)
        log(f"POWER CUT: qemu killed with SIGKILL (boot {self.boots})")

    async def up(self) -> float:
        """Wait for the lease and a healthy gateway; returns seconds since power on."""
        t0 = self.lab.qemu_started
        ips = await poll("DHCP leases", lambda: leased(self.lab.leases), 600)
        self.ip = ips[0]
        await poll("/api/v1/health", self.healthy, 900)
        took = time.time() - t0
        log(f"boot {self.boots}: healthy on {self.ip} {took:.1f} s after power on")
        return took

    async def healthy(self) -> dict[str, Any] | None:
        """The health body when the gateway answers 200 (every component running)."""
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http, \
                    http.get(f"http://{self.ip}/api/v1/health") as resp:
                body = await resp.json()
                return body if resp.status == 200 and isinstance(body, dict) else None
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None

    def setup_code(self) -> str | None:
        codes, _ = console_values(self.lab.console)
        return codes[-1] if codes else None


class Page:
    """The onboarding page's API as the Advanced page uses it (session + CSRF)."""

    def __init__(self, ip: str) -> None:
        self.base = f"https://{ip}"
        self.csrf = ""
        self.http = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            connector=aiohttp.TCPConnector(ssl=False),
            timeout=aiohttp.ClientTimeout(total=30))

    async def close(self) -> None:
        await self.http.close()

    async def _send(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"X-CSRF-Token": self.csrf} if self.csrf else {}
        async with self.http.request(method, self.base + path, json=body,
                                     headers=headers) as resp:
            try:
                return resp.status, await resp.json()
            except (ValueError, aiohttp.ContentTypeError):
                return resp.status, await resp.text()

    async def setup(self, code: str) -> None:
        status, body = await self._send("POST", "/api/v1/session/setup",
                                        {"setup_code": code, "password": PASSWORD})
        assert status == 201, (status, body)
        self.csrf = body["csrf_token"]

    async def login(self) -> None:
        status, body = await self._send("POST", "/api/v1/session/login", {"password": PASSWORD})
        assert status == 200, (status, body)
        self.csrf = body["csrf_token"]

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        """One request; logs in again when the daemon restarted (sessions are memory)."""
        status, answer = await self._send(method, path, body)
        if status == 401:
            await self.login()
            status, answer = await self._send(method, path, body)
        assert 200 <= status < 300, (method, path, status, answer)
        return answer

    async def try_call(self, method: str, path: str) -> Any:
        """Like ``call``, None while the gateway does not answer (restarting)."""
        try:
            return await self.call(method, path)
        except (aiohttp.ClientError, TimeoutError, AssertionError, OSError):
            return None


async def poll(what: str, check: Callable[[], Any], timeout: float,
               interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        await asyncio.sleep(interval)


# --- the cycle (peer namespace) --------------------------------------------------------------


class Cycle:
    """One gateway on the working disk, enrolled with the reference cloud."""

    def __init__(self, guest: Guest, cloud: Any, bundles: dict[str, Path], base: str) -> None:
        self.guest, self.cloud, self.bundles = guest, cloud, bundles
        self.running = base
        self.gid = ""
        self.figures: list[str] = []
        self.published: set[str] = set()
        self.health_timeout = HEALTH_TIMEOUT

    @property
    def page(self) -> Page:
        assert self.guest.page is not None
        return self.guest.page

    def figure(self, text: str) -> None:
        self.figures.append(text)
        print(f"FIGURE {text}", flush=True)

    async def onboard(self) -> None:
        """First boot: setup code from the console, admin password, enrollment."""
        self.guest.power_on()
        took = await self.guest.up()
        self.figure(f"boot: first boot to health {took:.1f} s")
        code = await poll("the setup code on the console", self.guest.setup_code, 120)
        self.guest.page = Page(self.guest.ip)
        await self.page.setup(code)
        token = await self.cloud.create_token(ACCOUNT)
        await self.page.call("POST", "/api/v1/cloud/enroll",
                             {"account_id": ACCOUNT, "token": token})
        self.gid = await poll("the gateway's link to the cloud", self._connected, 300)
        view = await self.status()
        assert view["mode"] == "releases" and view["current_version"] == self.running, view
        log(f"enrolled as {self.gid} through the page; link online; running {self.running}")

    def _connected(self) -> str | None:
        for gid, session in self.cloud.sessions.items():
            if not session.closed.is_set():
                return str(gid)
        return None

    async def status(self) -> dict[str, Any]:
        view = await self.page.call("GET", "/api/v1/update/status")
        assert isinstance(view, dict)
        return view

    async def publish(self, version: str) -> float:
        """Put ``version`` on the cloud's shelf; returns the moment (update available)."""
        path = self.bundles[version]

        async def chunks() -> Any:
            yield await asyncio.to_thread(path.read_bytes)

        await self.cloud.releases.publish(chunks(), rollback=False)
        self.published.add(version)
        log(f"release {version} published by the cloud ({path.stat().st_size / 1e6:.1f} MB)")
        return time.monotonic()

    async def apply(self) -> None:
        """``update.apply`` as a cloud command (the link must be up)."""
        await poll("the link (for update.apply)", self._connected, 300)
        result = await self.cloud.command(self._connected(), "update.apply", {}, limit=60)
        assert result.get("state") == "started", result

    async def watch(self, until: Callable[[dict[str, Any] | None], bool], what: str,
                    timeout: float, interval: float = 0.3) -> dict[str, Any] | None:
        """Poll the page's update status (None while nobody answers) until ``until``."""
        deadline = time.monotonic() + timeout
        last: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            view: dict[str, Any] | None = await self.page.try_call(
                "GET", "/api/v1/update/status")
            if view is not None:
                last = view
            if until(view):
                return view
            await asyncio.sleep(interval)
        raise AssertionError(f"{what}: not within {timeout:.0f} s; last status {last}")

    async def confirmed(self, version: str, timeout: float, since: float) -> dict[str, Any]:
        """Healthy on ``version``; fails at once when an update finished after ``since``
        (wall clock) reports that this version was rolled back."""
        def done(view: dict[str, Any] | None) -> bool:
            last = (view or {}).get("last_update") or {}
            if last.get("ok") is False and float(last.get("finished_at") or 0) > since \
                    and f"update to {version} " in str(last.get("message")):
                raise AssertionError(f"the update to {version} failed: {last['message']}")
            return bool(view and view.get("current_version") == version
                        and view.get("trial") is None and last.get("ok") is True
                        and last.get("version") == version)
        view = await self.watch(done, f"healthy on {version}", timeout, 1.0)
        assert view is not None
        return view

    async def settled(self, timeout: float) -> dict[str, Any]:
        """After a cut: healthy, answering, no update running and no trial left."""
        def done(view: dict[str, Any] | None) -> bool:
            return bool(view and view.get("trial") is None and not view.get("update_running"))
        view = await self.watch(done, "a settled gateway", timeout, 1.0)
        assert view is not None
        health = await poll("health after the cut", self.guest.healthy, 300)
        assert health["version"] == view["current_version"], (health, view)
        return view

    async def cut(self, name: str, version: str, when: Callable[[dict[str, Any] | None], bool],
                  what: str) -> None:
        """Apply ``version``, cut the power when ``when`` holds, boot again, check."""
        before = self.running
        if version not in self.published:
            await self.publish(version)
        await self.apply()
        t0 = time.monotonic()
        await self.watch(when, what, 1500, 0.3)
        self.guest.power_cut()
        cut_at = time.monotonic() - t0
        self.guest.power_on()
        took = await self.guest.up()
        view = await self.settled(self.health_timeout + 300)
        self.running = view["current_version"]
        assert self.running in (before, version), view
        assert self.running in view["releases"], view
        self.figure(f"{name}: cut {cut_at:.1f} s after update.apply ({what}); boot to "
                    f"health {took:.1f} s; working on {self.running} "
                    f"(last update: {(view.get('last_update') or {}).get('message')})")

    # -- scenarios ---------------------------------------------------------------------------

    def next_good(self, versions: dict[str, Any]) -> str:
        """The lowest good release above the running one (a cut before the switch
        leaves the same one to install again)."""
        goods: list[str] = versions["goods"]
        return min((v for v in goods if _key(v) > _key(self.running)), key=_key, default="")

    async def scenario(self, name: str, versions: dict[str, Any]) -> None:
        log(f"=== scenario {name} (running {self.running})")
        good, broken = self.next_good(versions), str(versions["broken"])
        if name == "cut-download":
            await self.cut(name, good, _phase("downloading"), "downloading")
        elif name == "cut-install":
            await self.cut(name, good, _phase("installing", after=20),
                           "installing for 20 s")
        elif name == "cut-switch":
            await self.cut(name, good, _after_switch(), "switched, restarting")
        elif name == "cut-trial":
            await self.cut(name, good, _on_trial(good), "new release on trial")
        elif name == "good":
            await self.good(good)
        elif name == "broken":
            await self.broken(broken)
        elif name == "cut-rollback":
            await self.cut(name, broken, _after_switch(), "broken release crash-looping")
        else:
            raise AssertionError(f"unknown scenario {name}")

    async def good(self, version: str) -> None:
        previous = self.running
        since = time.time()
        t0 = await self.publish(version)
        await self.apply()
        view = await self.confirmed(version, 1500, since)
        took = time.monotonic() - t0
        self.running = version
        assert (await self.guest.healthy() or {}).get("version") == version
        kept = view["releases"]
        assert kept == sorted([previous, version], key=_key), view
        self.figure(f"good: update available -> healthy on {version}: {took:.1f} s; "
                    f"releases kept {kept}")

    async def broken(self, version: str) -> None:
        previous = self.running
        t0 = await self.publish(version)
        await self.apply()
        await self.watch(lambda v: v is None, f"{version} to take over", 1500, 0.5)
        switched = time.monotonic() - t0

        def back(view: dict[str, Any] | None) -> bool:
            last = (view or {}).get("last_update") or {}
            return bool(view and view.get("current_version") == previous
                        and last.get("ok") is False
                        and f"update to {version} rolled back to {previous}"
                        in str(last.get("message")))
        view = await self.watch(back, f"rollback to {previous}", 1500, 1.0)
        assert view is not None
        took = time.monotonic() - t0
        overview = await self.page.call("GET", "/api/v1/overview")
        alerts = [a for a in overview["alerts"] if a["code"] == "system.update_failed"]
        assert alerts and version in alerts[0]["message"], overview["alerts"]
        events = await self.page.call("GET", "/api/v1/events?limit=50")
        subjects = [e.get("subject", "") for e in events["events"]]
        assert any(f"update to {version} rolled back" in s for s in subjects), subjects
        assert version not in view["releases"], view
        said = f"clgwd-rollback: rolled back from {version} to {previous}"
        await poll("the rollback's line in the journal", lambda: said in (
            self.guest.lab.console.read_text(errors="replace")), 60)
        self.figure(f"broken: update available -> switched to {version} {switched:.1f} s -> "
                    f"rolled back to {previous} and healthy: {took:.1f} s "
                    f"(deadline {self.health_timeout} s after the switch); alert: "
                    f"{alerts[0]['message']}")


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split("."))


def _phase(phase: str, after: float = 0.0) -> Callable[[dict[str, Any] | None], bool]:
    """True once the status has shown ``phase`` for ``after`` seconds."""
    first: list[float] = []

    def check(view: dict[str, Any] | None) -> bool:
        if not (view and view.get("phase") == phase):
            return False
        first[:] = first or [time.monotonic()]
        return time.monotonic() - first[0] >= after
    return check


def _after_switch() -> Callable[[dict[str, Any] | None], bool]:
    """True once the daemon stopped answering after it was installing: the switch is
    done (or under way) and the restart has begun."""
    seen = {"installing": False}

    def check(view: dict[str, Any] | None) -> bool:
        if view is not None:
            if view.get("phase") in ("installing", "switching"):
                seen["installing"] = True
            return False
        return seen["installing"]
    return check


def _on_trial(version: str) -> Callable[[dict[str, Any] | None], bool]:
    return lambda view: bool(view and (view.get("trial") or {}).get("new") == version
                             and view.get("current_version") == version)


async def peer_cycle(args: argparse.Namespace) -> int:
    from clgwd.refcloud.server import RefCloud

    work = Path(args.work)
    versions = json.loads(args.versions)
    bundles = {v: Path(p) for v, p in json.loads(args.bundles).items()}
    lab = Lab(Path(args.disk), work, prefix=args.prefix)
    cloud = RefCloud(work / "cloud", LAN_PEER, CLOUD_PORT)
    await cloud.__aenter__()
    guest = Guest(lab, args.smp)
    cycle = Cycle(guest, cloud, bundles, versions["base"])
    started = time.monotonic()
    try:
        cloud.release_key = raw_public_key_b64(Path(args.public_key))
        cycle.health_timeout = args.health_timeout
        await asyncio.to_thread(configure_disk, Path(args.disk), cloud.ca_file, work,
                                args.health_timeout)
        await cycle.onboard()
        for name in args.scenarios.split(","):
            await cycle.scenario(name, versions)
        quiet_deadline_timer(work)
        return 0
    finally:
        if lab.qemu is not None and lab.qemu.poll() is None:
            guest.power_cut()
        if guest.page is not None:
            await guest.page.close()
        await cloud.__aexit__(None, None, None)
        log(f"cycle took {time.monotonic() - started:.0f} s; figures:")
        for line in cycle.figures:
            print(f"  {line}", flush=True)


def quiet_deadline_timer(work: Path) -> None:
    """The deadline timer fires every 30 s; PID 1's "skipped because of an unmet
    condition" line for its service must not reach the journal (LogLevelMax=warning in
    the unit) on any boot of the run."""
    for console in sorted(work.glob("console-*.log")):
        noisy = [line for line in console.read_text(errors="replace").splitlines()
                 if "clgwd-update-deadline.service" in line and "unmet condition" in line]
        assert not noisy, f"{console.name}: {noisy[:3]}"
    log("the deadline timer left no skip lines in the journal")


async def _until_terminated(main: Any) -> int:
    """Run ``main``; SIGTERM cancels it, so its ``finally`` stops qemu and the cloud."""
    task = asyncio.ensure_future(main)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return int(await task)
    except asyncio.CancelledError:
        print("peer side stopped by SIGTERM", file=sys.stderr, flush=True)
        return 143


# --- the orchestrator (root namespace) ---------------------------------------------------


def main_run(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("image/test-update: run as root (network namespaces, tap devices)",
              file=sys.stderr)
        return 77
    missing = missing_programs() + [p for p in ("debugfs", "sfdisk")
                                    if shutil.which(p) is None]
    if missing:
        print(f"image/test-update: missing {', '.join(missing)}", file=sys.stderr)
        return 77
    image = Path(args.image) if args.image else default_image().with_suffix(".raw")
    if not image.exists():
        print(f"image/test-update: {image} does not exist; run image/build", file=sys.stderr)
        return 66
    scenarios = ALL_SCENARIOS if args.all_cuts or os.environ.get(
        "CLGWD_IMAGE_UPDATE_ALL") == "1" else CI_SCENARIOS
    if args.scenarios:
        scenarios = tuple(args.scenarios.split(","))
    started = time.monotonic()
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="clgwd-upd.")))
        base = _image_version(image)
        # One good release per scenario that can end on a new release, at most.
        goods = [bump(base, n + 1) for n in range(
            max(1, sum(name in ("cut-switch", "cut-trial", "good") for name in scenarios)))]
        versions: dict[str, Any] = {"base": base, "goods": goods, "broken": bump(base, 9)}
        shelf = Path(args.reuse_bundles) if args.reuse_bundles else work / "bundles"
        shelf.mkdir(parents=True, exist_ok=True)
        private, public = shelf / "release.pem", shelf / "release.pub.pem"
        if not (private.exists() and public.exists()):
            release_keys(shelf)
        t = time.monotonic()
        bundles = {}
        for version in [*goods, versions["broken"]]:
            bundle = shelf / f"clgwd-release-{version}.tar"
            if not bundle.exists():
                source = broken_source(work) if version == versions["broken"] else ROOT
                bundle = build_bundle(version, private, shelf, source)
            bundles[version] = str(bundle)
        log(f"{len(bundles)} signed bundles ready in {time.monotonic() - t:.1f} s")
        disk = work / "disk.raw"
        subprocess.run(["cp", "--sparse=always", str(image), str(disk)], check=True,
                       timeout=300)
        lab = Lab(disk, work)
        stack.callback(lab.close)
        lab.network()
        lab.dhcp()
        stack.callback(_kill_leftovers, lab)
        peer = subprocess.Popen(
            ["ip", "netns", "exec", lab.peer_ns, sys.executable, "-m", "tests.image.update",
             "peer", "--work", str(work), "--disk", str(disk), "--prefix",
             lab.vm_ns.removesuffix("-vm"), "--public-key", str(public), "--versions",
             json.dumps(versions), "--bundles", json.dumps(bundles), "--scenarios",
             ",".join(scenarios), "--smp", str(args.smp), "--health-timeout",
             str(args.health_timeout)], cwd=ROOT)
        try:
            peer.wait(timeout=args.timeout)
        finally:
            if peer.poll() is None:  # timeout or Ctrl-C: let the peer stop its qemu
                peer.terminate()
                try:
                    peer.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    peer.kill()
                    peer.wait(timeout=30)
        if args.keep_logs:
            keep = Path(args.keep_logs)
            keep.mkdir(parents=True, exist_ok=True)
            for path in work.glob("*.log"):
                shutil.copyfile(path, keep / path.name)
        if peer.returncode != 0:
            consoles = sorted(work.glob("console-*.log"))
            if consoles:
                tail = consoles[-1].read_text(errors="replace")[-4000:]
                print(f"--- last console output ({consoles[-1].name}) ---\n{tail}",
                      file=sys.stderr)
    print(f"image/test-update: {'passed' if peer.returncode == 0 else 'FAILED'} in "
          f"{time.monotonic() - started:.0f} s", flush=True)
    return peer.returncode


def _kill_leftovers(lab: Lab) -> None:
    """Whatever still runs in the test's namespaces (a qemu whose peer side was killed)
    is ours: stop it by PID before the namespaces go."""
    for ns in (lab.vm_ns, lab.peer_ns):
        pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True,
                              timeout=30, check=False).stdout.split()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)


def _image_version(image: Path) -> str:
    """The version in the image's name (clgwd-<version>.raw)."""
    return image.name.removeprefix("clgwd-").rsplit(".", 1)[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="image/test-update", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode")
    peer = sub.add_parser("peer")
    for name in ("--work", "--disk", "--prefix", "--public-key", "--versions", "--bundles",
                 "--scenarios"):
        peer.add_argument(name, required=True)
    peer.add_argument("--smp", type=int, default=2)
    peer.add_argument("--health-timeout", type=int, default=HEALTH_TIMEOUT)
    parser.add_argument("--image", help="raw disk (default build/image/clgwd-<v>.raw)")
    parser.add_argument("--smp", type=int, default=2, help="guest vCPUs (default 2)")
    parser.add_argument("--timeout", type=float, default=5400, help="seconds for the cycle")
    parser.add_argument("--all-cuts", action="store_true",
                        help="cut the power at every step (also CLGWD_IMAGE_UPDATE_ALL=1)")
    parser.add_argument("--scenarios", help=f"comma-separated, from {','.join(ALL_SCENARIOS)}")
    parser.add_argument("--keep-logs", help="copy the consoles and peer logs to this dir")
    parser.add_argument("--health-timeout", type=int, default=HEALTH_TIMEOUT,
                        help=f"system.update_health_timeout in the guest (default "
                             f"{HEALTH_TIMEOUT}; above ~150 the broken release's crash loop "
                             "reaches systemd's start limit first: OnFailure= rolls back)")
    parser.add_argument("--reuse-bundles", metavar="DIR",
                        help="keep the release key and bundles in DIR and reuse them "
                             "(faster reruns of the same checkout; default: build afresh)")
    args = parser.parse_args(argv)
    if args.mode == "peer":
        return asyncio.run(_until_terminated(peer_cycle(args)))
    return main_run(args)


if __name__ == "__main__":
    sys.exit(main())
