"""Idle footprint of ``clgwd run``: resident memory and time from start to a healthy
``/api/v1/health``, beside a bare aiohttp app (the baseline, measured in the same run).

Three processes, one after the other, each on 127.0.0.1 only:

* ``baseline``: a bare aiohttp app answering ``/api/v1/health``;
* ``empty``: ``clgwd run`` with nothing configured (defaults, listeners moved to
  127.0.0.1 and free ports, a temporary state dir);
* ``all parts``: ``clgwd run`` with every part that can run on loopback switched on:
  a CSV PBX directory and its sync, the cloud link enrolled with a reference cloud
  (``clgwd refcloud``, started here) and online, a tunnel to a loopback target.
  (Network ports and mDNS stay off: they would change or multicast on this host.)

Usage: ``.venv/bin/python bench/idle_bench.py [--settle 3] [--runs 3]``.
Goals (issue 14): empty <= 50 MB, all parts <= 60 MB, start to health <= 1 s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

PYTHON = sys.executable
LOG = open(os.environ.get("IDLE_BENCH_LOG", os.devnull), "ab")  # noqa: SIM115 - whole run
BASELINE_APP = """
import sys
from aiohttp import web

async def health(request):
    return web.json_response({"status": "ok"})

app = web.Application()
app.router.add_get("/api/v1/health", health)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    assert match is not None
    return int(match.group(1)) / 1024


def wait_healthy(port: int, proc: subprocess.Popen[bytes], limit: float = 30.0) -> float:
    """Seconds until /api/v1/health answers 200 (polled every 5 ms)."""
    started = time.monotonic()
    url = f"http://127.0.0.1:{port}/api/v1/health"
    while time.monotonic() - started < limit:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as resp:
            if resp.status == 200:
                return time.monotonic() - started
        time.sleep(0.005)
    raise TimeoutError(f"{url} not healthy within {limit} s")


@contextlib.contextmanager
def running(args: list[str], **kwargs: object) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=LOG,
                            **kwargs)  # type: ignore[call-overload]
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def measure(args: list[str], port: int, settle: float,
            ready: object = None) -> tuple[float, float]:
    """(start-to-health seconds, RSS MB after ``settle`` s idle)."""
    started = time.monotonic()
    with running(args) as proc:
        elapsed = wait_healthy(port, proc)
        if callable(ready):
            ready(started)
        time.sleep(settle)
        return elapsed, rss_mb(proc.pid)


def config_text(base: Path, http: int, https: int, extra: str = "") -> str:
    return (f"state: {{dir: '{base / 'state'}'}}\n"
            f"http: {{listen: [{{host: 127.0.0.1, port: {http}}}], "
            f"tls_listen: [{{host: 127.0.0.1, port: {https}}}]}}\n"
            f"control: {{socket: '{base / 'control.sock'}'}}\n" + extra)


def daemon_status(base: Path) -> dict[str, object]:
    out = subprocess.run([PYTHON, "-m", "clgwd", "status", "--json", "--socket",
                          str(base / "control.sock")], capture_output=True, check=False)
    return json.loads(out.stdout) if out.returncode in (0, 1) and out.stdout else {}


def wait_all_parts(base: Path, limit: float = 30.0) -> None:
    """Run one sync (``clgwd sync``: the page's Sync now), then wait for the link."""
    subprocess.run([PYTHON, "-m", "clgwd", "sync", "--socket", str(base / "control.sock")],
                   check=True, capture_output=True)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        comps = daemon_status(base).get("components", {})
        assert isinstance(comps, dict)
        if comps.get("link", {}).get("message", "").startswith("online"):
            return
        time.sleep(0.2)
    raise TimeoutError(f"link not online after {limit} s: {daemon_status(base)}")


def enrolled_refcloud(base: Path) -> tuple[subprocess.Popen[str], str, str, str]:
    """Start ``clgwd refcloud`` on loopback: the process, its URL, its CA file and an
    enrollment token (all read from its banner)."""
    port = free_port()
    proc = subprocess.Popen([PYTHON, "-m", "clgwd", "refcloud", "--dir", str(base / "rc"),
                             "--port", str(port), "--account", "bench", "--token-uses", "99"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    ca = ""
    for line in proc.stdout:
        ca_line = re.search(r"CA to trust for enrollment: (\S+)", line)
        ca = ca_line.group(1) if ca_line else ca
        found = re.search(r"enrollment token: (\S+)", line)
        if found:
            return proc, f"https://127.0.0.1:{port}", ca, found.group(1)
    raise RuntimeError("refcloud did not print a token")


def all_parts_config(base: Path, http: int, https: int, cloud: tuple[str, str, str],
                     target_port: int) -> str:
    cloud_url, ca_file, token = cloud
    samples = Path(__file__).parents[1] / "clgwd" / "pbx" / "samples" / "directory.csv"
    extra = (f"cloud: {{url: '{cloud_url}', enrollment_ca_file: '{ca_file}'}}\n"
             f"pbx: {{type: csv, name: Bench PBX, file: {{path: '{samples}'}}}}\n"
             "tunnel:\n  targets:\n"
             f"    - {{name: web, host: 127.0.0.1, ports: [{target_port}], "
             "allow_special: [loopback]}\n"
             "  tunnels:\n    - {name: admin, target: web}\n")
    text = config_text(base, http, https, extra)
    (base / "clgwd.yaml").write_text(text)
    token_file = base / "token"
    token_file.write_text(token + "\n")
    subprocess.run([PYTHON, "-m", "clgwd", "enroll", "--config", str(base / "clgwd.yaml"),
                    "--account", "bench", "--token-file", str(token_file)], check=True,
                   stdout=LOG, stderr=LOG)
    return text


def run_once(settle: float) -> dict[str, tuple[float, float]]:
    results: dict[str, tuple[float, float]] = {}
    port = free_port()
    results["baseline"] = measure([PYTHON, "-c", BASELINE_APP, str(port)], port, settle)
    with tempfile.TemporaryDirectory(prefix="clgwd-idle-") as tmp:
        base = Path(tmp)
        http, https = free_port(), free_port()
        (base / "clgwd.yaml").write_text(config_text(base, http, https))
        results["empty"] = measure([PYTHON, "-m", "clgwd", "run", "-c",
                                    str(base / "clgwd.yaml")], http, settle)
    with tempfile.TemporaryDirectory(prefix="clgwd-idle-") as tmp:
        base = Path(tmp)
        cloud, url, ca_file, token = enrolled_refcloud(base)
        try:
            http, https = free_port(), free_port()
            all_parts_config(base, http, https, (url, ca_file, token), free_port())
            results["all parts"] = measure(
                [PYTHON, "-m", "clgwd", "run", "-c", str(base / "clgwd.yaml")], http, settle,
                ready=lambda _started: wait_all_parts(base))
        finally:
            cloud.terminate()
            cloud.wait(15)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds idle before RSS is read (default 3)")
    parser.add_argument("--runs", type=int, default=3, help="repetitions (median shown)")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    runs = [run_once(args.settle) for _ in range(args.runs)]
    base_start = statistics.median(r["baseline"][0] for r in runs)
    base_rss = statistics.median(r["baseline"][1] for r in runs)
    print(f"{'process':<12} {'start->health':>14} {'ratio':>6} {'RSS MB':>8} {'ratio':>6}"
          f"   (median of {args.runs}, RSS after {args.settle:g} s idle)")
    for name in ("baseline", "empty", "all parts"):
        start = statistics.median(r[name][0] for r in runs)
        rss = statistics.median(r[name][1] for r in runs)
        print(f"{name:<12} {start:>12.3f} s {start / base_start:>6.1f} {rss:>8.1f} "
              f"{rss / base_rss:>6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
