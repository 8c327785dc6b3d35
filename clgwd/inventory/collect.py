"""The local platform's facts, in the vendor's System Inventory fields (psutil).

``collect_local()`` is blocking (psutil and a few small /proc and /sys reads): run it
through ``asyncio.to_thread``. It takes a few milliseconds.
"""

from __future__ import annotations

import os
import platform
import socket
import time
from pathlib import Path
from typing import Any, Final

import psutil

_SKIP_FS: Final = frozenset({"squashfs", "tmpfs", "devtmpfs", "overlay", "proc", "sysfs",
                             "cgroup", "cgroup2", "nsfs", "tracefs", "debugfs", "autofs"})
MAX_PARTITIONS: Final = 32


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


def _cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Processor", "cpu model"):
            return value.strip()
    return platform.processor() or platform.machine()


def _os_name() -> str:
    try:
        release = platform.freedesktop_os_release()
    except OSError:
        return platform.system()
    return release.get("PRETTY_NAME") or release.get("NAME") or platform.system()


def _platform_name() -> str:
    """The hardware or virtual machine model (DMI), e.g. "KVM" or "PowerEdge R250"."""
    vendor = _read("/sys/class/dmi/id/sys_vendor")
    product = _read("/sys/class/dmi/id/product_name")
    return " ".join(part for part in (vendor, product) if part) or platform.machine()


def human_bytes(value: float) -> str:
    """1288490188 -> "1.2 GiB" (the vendor's Memory column style)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def partitions() -> list[dict[str, Any]]:
    out = []
    seen: set[str] = set()
    for part in psutil.disk_partitions(all=False):
        if part.fstype in _SKIP_FS or part.mountpoint in seen:
            continue
        seen.add(part.mountpoint)
        try:
            usage = psutil.disk_usage(part.mountpoint)
        except OSError:
            continue
        out.append({"device": part.device, "mount_point": part.mountpoint,
                    "fs_type": part.fstype, "capacity_bytes": usage.total,
                    "used_bytes": usage.used, "capacity": human_bytes(usage.total)})
        if len(out) >= MAX_PARTITIONS:
            break
    return out


def collect_local() -> dict[str, Any]:
    """Host, memory, processor and partitions of this machine (blocking)."""
    memory = psutil.virtual_memory()
    boot = psutil.boot_time()
    uname = os.uname()
    return {
        "host": {
            "name": socket.gethostname(),
            "platform_type": "linux",
            "platform_name": _platform_name(),
            "system_family": platform.system().lower(),
            "os": _os_name(),
            "kernel": uname.release,
            "architecture": uname.machine,
            "boot_time": boot,
            "uptime_seconds": round(time.time() - boot),
        },
        "memory": {"total_bytes": memory.total, "available_bytes": memory.available,
                   "text": human_bytes(memory.total)},
        "processor": {"model": _cpu_model(), "cores": psutil.cpu_count(logical=False) or 0,
                      "threads": psutil.cpu_count(logical=True) or 0},
        "partitions": partitions(),
    }


VOLATILE: Final = {
    # Values that change without anything changing: left out of the change check.
    "host": ("uptime_seconds", "boot_time"),
    "memory": ("available_bytes",),
}


def stable_view(document: dict[str, Any]) -> dict[str, Any]:
    """The document without timestamps and live measurements (the change check)."""
    out = {k: v for k, v in document.items()
           if k not in ("collected_at", "last_submitted", "next_submission")}
    for section, keys in VOLATILE.items():
        if isinstance(out.get(section), dict):
            out[section] = {k: v for k, v in out[section].items() if k not in keys}
    out["partitions"] = [{k: v for k, v in p.items() if k != "used_bytes"}
                         for p in out.get("partitions", [])]
    out["platforms"] = [{k: v for k, v in p.items() if k not in ("uptime_seconds", "storage")}
                        for p in out.get("platforms", [])]
    return out
