"""Boot the built appliance disk under qemu and onboard it like a technician would.

``image/test-boot`` runs this module (as root). Two network namespaces are created:

* ``<prefix>-vm``: qemu (TCG, UEFI firmware, the disk with ``-snapshot``) with two
  virtio NICs on tap devices, bridged with one end of a veth pair;
* ``<prefix>-peer``: the technician's LAN (198.51.100.1/24 on the veth's other end),
  with dnsmasq handing out leases, avahi-daemon on a private system bus, and the checks:
  ``avahi-resolve`` finds cloudlink.local, ``/api/v1/health`` answers, Chromium opens
  the onboarding page by name with the setup code read from the serial console, a
  factory reset from the page brings back the first-boot state (a new setup code and
  certificate on the console, the setup form again), and a reboot from the page works.

Every process is started here and stopped (by PID) at the end; the namespaces are
deleted. Nothing leaves the namespaces (the peer's LAN has no route out).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Final, TypeVar

ROOT: Final = Path(__file__).resolve().parents[2]
LAN_PEER: Final = "198.51.100.1"
DHCP_RANGE: Final = "198.51.100.100,198.51.100.150,255.255.255.0,1h"
MACS: Final = ("52:54:00:c1:a9:01", "52:54:00:c1:a9:02")
PASSWORD: Final = "Technician-Test-Pw-1"
OVMF_CODE: Final = Path("/usr/share/OVMF/OVMF_CODE.fd")
OVMF_VARS: Final = Path("/usr/share/OVMF/OVMF_VARS.fd")
CHROMIUM: Final = "/usr/bin/chromium"
SETUP_CODE_RE: Final = re.compile(r"Setup code: (\S+)\s+\(enter it on the first visit\)")
FINGERPRINT_RE: Final = re.compile(
    r"fingerprint \(SHA-256\):\s*\n\s*([0-9A-F:]{47})\s*\n\s*([0-9A-F:]{47})\s*\n")
PROGRAMS: Final = ("qemu-system-x86_64", "ip", "dnsmasq", "avahi-daemon", "avahi-resolve",
                   "dbus-daemon")
T = TypeVar("T")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def wait_for(what: str, check: Callable[[], T | None], timeout: float,
             interval: float = 0.5) -> T:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


def default_image() -> Path:
    text = (ROOT / "clgwd" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "(.*)"$', text, re.M)
    assert match is not None
    return ROOT / "build" / "image" / f"clgwd-{match.group(1)}.qcow2"


def missing_programs() -> list[str]:
    missing = [p for p in PROGRAMS if shutil.which(p) is None]
    missing += [str(p) for p in (OVMF_CODE, OVMF_VARS, Path(CHROMIUM)) if not p.exists()]
    return missing


class Lab:
    """The namespaces, the peers and qemu; ``close`` stops all of it."""

    def __init__(self, image: Path, work: Path, prefix: str | None = None) -> None:
        self.image = image
        self.work = work
        prefix = prefix or f"clgwd-img{os.getpid()}"
        self.vm_ns = f"{prefix}-vm"
        self.peer_ns = f"{prefix}-peer"
        self.procs: list[subprocess.Popen[bytes]] = []
        self.console = work / "console.log"
        self.leases = work / "dnsmasq.leases"
        self.bus = f"unix:path={work / 'dbus' / 'system_bus_socket'}"
        self.qemu_started = 0.0
        self.qemu: subprocess.Popen[bytes] | None = None
        self.qemu_argv: list[str] = []
        self.overlay = work / "overlay.qcow2"
        self.root_partition = (0, 0)
        """Byte offset and size of the root partition (read with the loader entry)."""

    def _start(self, argv: list[str], log_name: str, ns: str | None = None,
               env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        full = (["ip", "netns", "exec", ns] if ns else []) + argv
        out = open(self.work / log_name, "ab")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(full, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, **(env or {})})
        out.close()
        self.procs.append(proc)
        return proc

    def network(self) -> None:
        vm, peer = self.vm_ns, self.peer_ns
        script = f"""
            ip netns add {vm}
            ip netns add {peer}
            ip -n {vm} link set lo up
            ip -n {peer} link set lo up
            ip -n {vm} link add br0 type bridge
            ip -n {vm} link set br0 up
            ip -n {vm} tuntap add dev tap0 mode tap
            ip -n {vm} tuntap add dev tap1 mode tap
            ip -n {vm} link add lan-br netns {vm} type veth peer name lan0 netns {peer}
            for dev in tap0 tap1 lan-br; do
                ip -n {vm} link set $dev master br0
                ip -n {vm} link set $dev up
            done
            ip -n {peer} addr add {LAN_PEER}/24 dev lan0
            ip -n {peer} link set lan0 up
        """
        subprocess.run(["sh", "-ec", textwrap.dedent(script)], check=True, timeout=30)

    def peers(self) -> None:
        self.dhcp()
        self.mdns()

    def dhcp(self) -> None:
        """dnsmasq on the peer's LAN: the leases go to ``self.leases``."""
        self._start(["dnsmasq", "--no-daemon", "--port=0", "--interface=lan0",
                     "--bind-interfaces", f"--dhcp-range={DHCP_RANGE}",
                     f"--dhcp-leasefile={self.leases}", "--log-dhcp",
                     "--conf-file=/dev/null"], "dnsmasq.log", ns=self.peer_ns)

    def mdns(self) -> None:
        """A private system bus and avahi-daemon in the peer namespace."""
        (self.work / "dbus").mkdir()
        self._start(["dbus-daemon", "--config-file=/usr/share/dbus-1/system.conf",
                     f"--address={self.bus}", "--nofork", "--nopidfile"], "dbus.log")
        sock = self.work / "dbus" / "system_bus_socket"
        wait_for("private system bus", sock.exists, 10, 0.1)
        conf = self.work / "avahi.conf"
        conf.write_text(textwrap.dedent("""\
            [server]
            host-name=technician-laptop
            use-ipv4=yes
            use-ipv6=no
            allow-interfaces=lan0
            enable-dbus=yes
            [wide-area]
            enable-wide-area=no
            [publish]
            publish-hinfo=no
            publish-workstation=no
            [reflector]
            [rlimits]
            """), encoding="utf-8")
        # ip netns exec gives the shell its own mount namespace: the tmpfs is private.
        self._start(["sh", "-c", "mkdir -p /run/avahi-daemon && mount -t tmpfs none "
                     "/run/avahi-daemon && exec avahi-daemon --no-drop-root --no-chroot "
                     f"--no-rlimits -f {conf}"], "avahi.log", ns=self.peer_ns,
                    env={"DBUS_SYSTEM_BUS_ADDRESS": self.bus})
        avahi_log = self.work / "avahi.log"
        wait_for("avahi-daemon", lambda: "Server startup complete" in
                 avahi_log.read_text(errors="replace"), 15)

    def boot(self, smp: int, read_only_root: bool, persistent: bool = False) -> None:
        """Start qemu. ``persistent``: the guest writes to the image itself (a working
        copy the caller made), the firmware's variables are kept between boots, and the
        console log of each boot goes to ``self.console`` (set it before each boot)."""
        fmt = "qcow2" if self.image.suffix == ".qcow2" else "raw"
        # -no-reboot: a reboot of the guest ends qemu (exit 0) and ``start_again_if_rebooted``
        # powers it on again. A warm reset of OVMF under TCG with two vCPUs once hung
        # for good after "reboot: machine restart" (a CI run); a cold start does not, and
        # what the test checks (the page's reboot reaches the kernel) comes before it.
        # The console is appended to, so one log holds every boot.
        argv = ["qemu-system-x86_64", "-accel", "tcg", "-machine", "q35", "-m", "1024",
                "-smp", str(smp), "-display", "none", "-monitor", "none", "-no-reboot",
                "-chardev", f"file,id=console,path={self.console},append=on",
                "-serial", "chardev:console"]
        if read_only_root:
            # Not -snapshot: the guest's writes go to an overlay that is read afterwards.
            # The disk's kernel is loaded by qemu's own firmware (it loads -kernel again
            # at the reboot; OVMF did not here).
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(self.image),
                            "-F", fmt, str(self.overlay)], check=True, timeout=60)
            # fsck.mode=skip: e2fsck (initrd, systemd-fsck-root) updates the superblock of
            # a root it checks read-only; this test is about what the running system writes.
            argv += ["-drive", f"file={self.overlay},format=qcow2,if=virtio",
                     *self._kernel_with("ro", "fsck.mode=skip")]
        else:
            vars_copy = self.work / "OVMF_VARS.fd"
            if not (persistent and vars_copy.exists()):
                shutil.copyfile(OVMF_VARS, vars_copy)
            snapshot = "" if persistent else ",snapshot=on"
            argv += ["-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
                     "-drive", f"if=pflash,format=raw,file={vars_copy}",
                     "-drive", f"file={self.image},format={fmt},if=virtio{snapshot}"]
        for index, mac in enumerate(MACS):
            argv += ["-netdev", f"tap,id=n{index},ifname=tap{index},script=no,downscript=no",
                     "-device", f"virtio-net-pci,netdev=n{index},mac={mac}"]
        self.qemu_argv = argv
        self.qemu_started = time.time()
        self.qemu = self._start(argv, "qemu.log", ns=self.vm_ns)

    def start_again_if_rebooted(self) -> bool:
        """Power the guest on again (same disk, firmware variables and console) when it
        rebooted, i.e. qemu ended with status 0 (``-no-reboot``); True if it did."""
        if self.qemu is None or self.qemu.poll() != 0:
            return False
        log("the guest rebooted (qemu -no-reboot ended); powering it on again")
        self.qemu = self._start(self.qemu_argv, "qemu.log", ns=self.vm_ns)
        return True

    def _kernel_with(self, root_flag: str, *extra: str) -> list[str]:
        """Boot the disk's own kernel, initrd and loader entry, with ``rw`` replaced
        (and ``extra`` options added): qemu loads them, the disk is otherwise the same."""
        raw = self.work / "disk.raw"
        subprocess.run(["qemu-img", "convert", "-O", "raw", str(self.image), str(raw)],
                       check=True, timeout=300)
        files = {}
        for name in ("vmlinuz", "initrd.img", "loader/entries/clgwd.conf"):
            target = self.work / name.replace("/", "_")
            subprocess.run(["mcopy", "-n", "-i", f"{raw}@@1M", f"::/{name}", str(target)],
                           check=True, timeout=60, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})
            files[name] = target
        table = json.loads(subprocess.run(["sfdisk", "-J", str(raw)], capture_output=True,
                                          check=True, timeout=60).stdout)
        root = next(p for p in table["partitiontable"]["partitions"] if p["name"] == "root")
        self.root_partition = (root["start"] * 512, root["size"] * 512)
        raw.unlink()
        entry = files["loader/entries/clgwd.conf"].read_text(encoding="utf-8")
        options = next(line.split(None, 1)[1] for line in entry.splitlines()
                       if line.startswith("options "))
        options = " ".join([root_flag if word == "rw" else word for word in options.split()]
                           + list(extra))
        return ["-kernel", str(files["vmlinuz"]), "-initrd", str(files["initrd.img"]),
                "-append", options]

    def root_writes(self) -> int:
        """Bytes the guest wrote inside the root partition (after qemu has stopped)."""
        ranges = json.loads(subprocess.run(
            ["qemu-img", "map", "--output=json", str(self.overlay)], capture_output=True,
            check=True, timeout=120).stdout)
        start, size = self.root_partition
        return sum(max(0, min(r["start"] + r["length"], start + size) - max(r["start"], start))
                   for r in ranges if r["depth"] == 0 and r["data"])

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        for ns in (self.vm_ns, self.peer_ns):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30,
                           check=False)


# --- the peer side (runs inside the peer namespace) ------------------------------------


def leased(leases: Path) -> list[str] | None:
    """The two NICs' addresses once dnsmasq has leased both."""
    try:
        rows = [line.split() for line in leases.read_text().splitlines()]
    except FileNotFoundError:
        return None
    by_mac = {row[1]: row[2] for row in rows if len(row) >= 3}
    found = [by_mac.get(mac) for mac in MACS]
    return [ip for ip in found if ip] if all(found) else None


def get_json(url: str, timeout: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def health(ip: str) -> Any:
    try:
        body = get_json(f"http://{ip}/api/v1/health")
    except (OSError, ValueError, urllib.error.URLError):
        return None
    return body or {"answered": True}


def console_values(console: Path) -> tuple[list[str], list[str]]:
    text = console.read_text(errors="replace")
    prints = [f"{first}:{second}" for first, second in FINGERPRINT_RE.findall(text)]
    return SETUP_CODE_RE.findall(text), prints


def avahi_resolve(bus: str, name: str) -> str | None:
    result = subprocess.run(["avahi-resolve", "-4", "-n", name], capture_output=True,
                            text=True, timeout=10, check=False,
                            env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": bus})
    parts = result.stdout.split()
    return parts[1] if len(parts) >= 2 else None


async def submit_setup(page: Any, code: str, expect: str) -> None:
    """The first-visit form: the setup code and the new admin password twice."""
    await page.fill("#setup-code", code)
    await page.fill("#setup-pw", PASSWORD)
    await page.fill("#setup-pw2", PASSWORD)
    await page.click("#setup-form button[type=submit]")
    await page.wait_for_selector(expect)


async def browser_flow(ip: str, code: str, console: Path) -> str:
    """Onboard with ``code``, factory-reset from the Advanced page; returns the new code."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  f"--host-resolver-rules=MAP cloudlink.local {ip}, MAP * ~NOTFOUND"])
        try:
            context = await browser.new_context(ignore_https_errors=True)
            page = await context.new_page()
            page.set_default_timeout(120_000)  # TCG: the guest is slow
            try:
                return await onboard_and_reset(page, code, console)
            except Exception:
                await page.screenshot(path=str(console.with_name("failure.png")))
                texts = await page.evaluate(
                    "[...document.querySelectorAll('#toast, [id$=-err]')]"
                    ".filter(e => e.textContent.trim())"
                    ".map(e => e.id + ': ' + e.textContent.trim())")
                log(f"page at {page.url}; messages: {texts}")
                raise
        finally:
            await browser.close()


async def onboard_and_reset(page: Any, code: str, console: Path) -> str:
    """The technician's visit: onboard, factory reset, onboard again, reboot; returns
    the setup code the reset made."""
    started = time.monotonic()
    await page.goto("https://cloudlink.local/")
    await page.wait_for_selector("#view-setup:not([hidden])")
    log(f"onboarding page loaded by name in Chromium "
        f"({time.monotonic() - started:.1f} s)")
    await submit_setup(page, code, "#view-gateway:not([hidden])")
    log("setup code from the console accepted, admin password set")
    await wait_async("console shows the code is used", lambda: "admin password "
                     "is set" in console.read_text(errors="replace"), 60)
    await page.goto("https://cloudlink.local/#advanced")
    await page.wait_for_selector("#view-advanced:not([hidden])")
    await page.fill("#revert", "revert")
    await page.click("#reset-btn")
    await page.wait_for_selector("#toast:has-text('Resetting to factory defaults')")
    reset_at = time.monotonic()
    log("factory reset requested from the page")

    def new_code() -> str | None:
        codes, _ = console_values(console)
        return codes[-1] if codes and codes[-1] != code else None

    fresh = await wait_async("a new setup code on the console", new_code, 300)
    log(f"first-boot state back: new setup code on the console "
        f"{time.monotonic() - reset_at:.1f} s after the reset")
    await page.goto("https://cloudlink.local/")
    await page.wait_for_selector("#view-setup:not([hidden])")
    await submit_setup(page, code, "#setup-form-err:has-text('wrong setup code')")
    log("the old setup code is refused after the reset")
    await submit_setup(page, fresh, "#view-gateway:not([hidden])")
    log("the new setup code from the console opens the page")
    await page.goto("https://cloudlink.local/#advanced")
    await page.wait_for_selector("#view-advanced:not([hidden])")
    page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.click("#reboot")
    await page.wait_for_selector("#toast:has-text('Rebooting')")
    log("reboot requested from the page")
    return fresh


async def wait_async(what: str, check: Callable[[], T | None], timeout: float) -> T:
    return await asyncio.to_thread(wait_for, what, check, timeout)


def peer_main(args: argparse.Namespace) -> int:
    console, t0 = Path(args.console), args.t0
    ips = wait_for("DHCP leases for both NICs", lambda: leased(Path(args.leases)), 600)
    log(f"dnsmasq leased {ips[0]} (eth0) and {ips[1]} (eth1) "
        f"{time.time() - t0:.1f} s after qemu started")
    wait_for("/api/v1/health", lambda: health(ips[0]), 600)
    boot_to_health = time.time() - t0
    log(f"/api/v1/health answers on {ips[0]}: boot-to-health {boot_to_health:.1f} s (TCG)")
    resolved = wait_for("avahi-resolve cloudlink.local",
                        lambda: avahi_resolve(args.bus, "cloudlink.local"), 60, 1)
    assert resolved in ips, f"cloudlink.local resolved to {resolved}, not one of {ips}"
    log(f"avahi-resolve: cloudlink.local -> {resolved}")
    codes = wait_for("the setup code on the console", lambda: console_values(console)[0], 120)
    # The banner is redrawn on each address event and every 3 s: wait for the one that
    # shows the leased address (the code may appear first, with no address yet).
    wait_for("the leased address in the console banner",
             lambda: f"https://{ips[0]}/" in console.read_text(errors="replace"), 60)
    _, prints = console_values(console)
    assert prints, "no certificate fingerprint on the console"
    assert "https://cloudlink.local/" in console.read_text(errors="replace")
    log(f"console banner: URL by name and IP, fingerprint {prints[-1][:23]}..., "
        f"setup code {codes[-1]}")
    asyncio.run(browser_flow(resolved, codes[-1], console))
    _, prints_after = console_values(console)
    assert prints_after[-1] != prints[-1], "the factory reset kept the HTTPS certificate"
    log("factory reset made a new HTTPS certificate (new fingerprint on the console)")
    boots = console.read_text(errors="replace").count("Linux version")
    reboot_at = time.time()
    wait_for("the guest to boot again",
             lambda: console.read_text(errors="replace").count("Linux version") > boots, 300)
    wait_for("/api/v1/health after the reboot", lambda: health(ips[0]), 600)
    log(f"rebooted by the page (polkit rule): health again after "
        f"{time.time() - reboot_at:.1f} s")
    print(f"BOOT-TO-HEALTH {boot_to_health:.1f}", flush=True)
    return 0


# --- the orchestrator (root namespace) --------------------------------------------------


def main_run(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("image/test-boot: run as root (network namespaces, tap devices)", file=sys.stderr)
        return 77
    missing = missing_programs()
    if missing:
        print(f"image/test-boot: missing {', '.join(missing)}", file=sys.stderr)
        return 77
    image = Path(args.image) if args.image else default_image()
    if not image.exists():
        print(f"image/test-boot: {image} does not exist; run image/build", file=sys.stderr)
        return 66
    started = time.monotonic()
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="clgwd-boot.")))
        lab = Lab(image, work)
        stack.callback(lab.close)
        lab.network()
        lab.peers()
        mode = ("its kernel via qemu -kernel with a read-only root, writes to an overlay"
                if args.read_only_root else "UEFI from its own disk, writes to an overlay")
        log(f"booting {image.name} under qemu TCG (-smp {args.smp}, {mode})")
        if args.read_only_root:
            lab.boot(args.smp, read_only_root=True)
        else:  # an overlay, not -snapshot: the disk must keep its writes across the reboot
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image), "-F",
                            "qcow2" if image.suffix == ".qcow2" else "raw", str(lab.overlay)],
                           check=True, timeout=60)
            lab.image = lab.overlay
            lab.boot(args.smp, read_only_root=False, persistent=True)
        result = run_peer(lab, args.timeout)
        if args.keep_logs:
            keep = Path(args.keep_logs)
            keep.mkdir(parents=True, exist_ok=True)
            for name in ("console.log", "qemu.log", "dnsmasq.log", "avahi.log",
                         "failure.png"):
                if (work / name).exists():
                    shutil.copyfile(work / name, keep / name)
        if result != 0:
            tail = lab.console.read_text(errors="replace")[-3000:]
            print(f"--- last console output ---\n{tail}", file=sys.stderr)
        elif args.read_only_root:
            lab.close()
            written = lab.root_writes()
            log(f"bytes written to the root partition during both boots: {written}")
            result = 1 if written else 0
    print(f"image/test-boot: {'passed' if result == 0 else 'FAILED'} in "
          f"{time.monotonic() - started:.0f} s", flush=True)
    return result


def run_peer(lab: Lab, timeout: float) -> int:
    """The peer side's checks in the peer namespace, powering the guest on again each
    time it reboots; the peer's exit status (1 when it ran out of time)."""
    peer = subprocess.Popen(
        ["ip", "netns", "exec", lab.peer_ns, sys.executable, "-m", "tests.image.boot",
         "peer", "--console", str(lab.console), "--leases", str(lab.leases),
         "--bus", lab.bus, "--t0", str(lab.qemu_started)], cwd=ROOT)
    deadline = time.monotonic() + timeout
    while peer.poll() is None:
        if time.monotonic() > deadline:
            peer.kill()
            peer.wait(timeout=30)
            print(f"image/test-boot: the checks did not end within {timeout:.0f} s",
                  file=sys.stderr)
            return 1
        lab.start_again_if_rebooted()
        time.sleep(0.5)
    return peer.returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="image/test-boot", description=__doc__)
    sub = parser.add_subparsers(dest="mode")
    peer = sub.add_parser("peer")
    peer.add_argument("--console", required=True)
    peer.add_argument("--leases", required=True)
    peer.add_argument("--bus", required=True)
    peer.add_argument("--t0", type=float, required=True)
    parser.add_argument("--image", help="disk to boot (default build/image/clgwd-<v>.qcow2)")
    parser.add_argument("--smp", type=int, default=2, help="guest vCPUs (default 2)")
    parser.add_argument("--timeout", type=float, default=1500, help="seconds for all checks")
    parser.add_argument("--read-only-root", action="store_true",
                        help="boot the disk's kernel with ro instead of rw (qemu -kernel) "
                             "and check that nothing was written to the root partition")
    parser.add_argument("--keep-logs", help="copy the console and peer logs to this dir")
    args = parser.parse_args(argv)
    if args.mode == "peer":
        return peer_main(args)
    return main_run(args)


if __name__ == "__main__":
    sys.exit(main())
