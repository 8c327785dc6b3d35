#!/usr/bin/env python3
"""Screenshots of every step of the onboarding page, for docs/screens/ and the README.

Starts what ``clgwd demo`` starts (the daemon with the sample PBX directory and a
reference cloud, all on 127.0.0.1, state in a temporary dir), walks the page in
Debian's Chromium as a technician would (setup code and password, site, enrollment,
Connect with the sample directory's irregularities), and writes one viewport-sized PNG
per step per width: ``<step>-<width>.png``. Rerun it when the page changes:

    .venv/bin/python scripts/screens.py            # into docs/screens/
    .venv/bin/python scripts/screens.py --out /tmp/shots --widths 390

Needs ``chromium`` (apt) and ``playwright`` (pip, the test extra; never
``playwright install``). Nothing leaves the machine: the browser resolves no names and
talks to 127.0.0.1 only; the pre-flight checks (which would ask this machine's name
and time servers) are not run.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
from playwright.async_api import Page, async_playwright

from clgwd.cli.demo import DEMO_ACCOUNT, demo_config_text
from clgwd.config import load_config
from clgwd.daemon import Daemon
from clgwd.refcloud.server import RefCloud
from clgwd.sdnotify import Notifier
from clgwd.store import Store
from clgwd.web import auth

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("setup", "gateway", "cloud", "pbx", "connect", "voice", "deployment", "advanced",
         "overview")
"""Every view of the page, in the order a technician meets them."""
WIDTHS = (1280, 390)
HEIGHT = {1280: 800, 390: 844}
PASSWORD = "screens password 1"  # noqa: S105 - a throw-away gateway's password
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-extensions",
                 "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]
SITE = {"site_name": "Ballad Industries", "address": "2301 Express Avenue",
        "city": "Ottawa", "country": "Canada", "province": "Ontario",
        "postal_code": "K0A 2Z0"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _start_daemon(base: Path, cloud: RefCloud) -> tuple[Daemon, asyncio.Task[int], str]:
    """The demo's config on free loopback ports; returns when the page answers."""
    config_path = base / "clgwd.yaml"
    port, tls_port = _free_port(), _free_port()
    text = demo_config_text(base, port, tls_port, cloud.url, cloud.ca_file)
    await asyncio.to_thread(config_path.write_text, text, encoding="utf-8")
    config = await asyncio.to_thread(load_config, config_path)
    daemon = Daemon(config, config_path, notifier=Notifier({}))
    task = asyncio.ensure_future(daemon.run())
    async with aiohttp.ClientSession() as http, asyncio.timeout(30):
        while True:
            if task.done():
                raise RuntimeError(f"the daemon exited with {task.result()}")
            try:
                async with http.get(f"http://127.0.0.1:{port}/api/v1/health") as resp:
                    if resp.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    return daemon, task, f"https://127.0.0.1:{tls_port}"


async def _open(page: Page, base: str, step: str) -> None:
    await page.goto(f"{base}/#{step}")
    await page.wait_for_selector(f"#view-{step}:not([hidden])")
    await page.wait_for_load_state("networkidle")


async def _shot(page: Page, out: Path, step: str, width: int, *, top: bool = True) -> Path:
    """The viewport (small files), from the top of the page unless ``top`` is False."""
    path = out / f"{step}-{width}.png"
    await page.evaluate("document.activeElement && document.activeElement.blur()")
    if top:
        await page.evaluate("window.scrollTo(0, 0)")
    await page.screenshot(path=str(path))
    return path


async def _walk(page: Page, base: str, out: Path, width: int, *, cloud: RefCloud,
                first: bool) -> list[Path]:
    """Every step after the setup; the first width also does what each step is for."""
    shots = []
    await _open(page, base, "gateway")
    if first:
        for field, value in SITE.items():
            await page.fill(f"#{field}", value)
        await page.click("#site-form button[type=submit]")
        await page.wait_for_selector("#toast:has-text('Successfully updated site')")
        await page.wait_for_selector("nav li[data-step=gateway][data-state=done]")
    shots.append(await _shot(page, out, "gateway", width))

    await _open(page, base, "cloud")
    if first:
        await page.fill("#account_id", DEMO_ACCOUNT)
        await page.fill("#enroll_token", await cloud.create_token(DEMO_ACCOUNT))
        await page.click("#enroll-form button[type=submit]")
        await page.wait_for_selector("#enrolled:not([hidden])")
        for _ in range(100):  # the link connects a moment after enrollment
            await page.reload()
            await page.wait_for_load_state("networkidle")
            if "Link: connected" in (await page.text_content("#cloud-state") or ""):
                break
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError("the gateway's cloud link did not connect")
    shots.append(await _shot(page, out, "cloud", width))

    await _open(page, base, "pbx")
    await page.wait_for_selector("#pbx_type option[value=csv]", state="attached")
    shots.append(await _shot(page, out, "pbx", width))

    await _open(page, base, "connect")
    await page.click("#pbx-test")  # test + sync; the sample has irregularities: it stays
    await page.wait_for_selector("#test-result:has-text('PBX Connected')")
    await page.wait_for_selector("#sync-result:has-text('Sync complete')")
    await page.wait_for_load_state("networkidle")
    await page.locator("#test-result .card.problem").scroll_into_view_if_needed()
    shots.append(await _shot(page, out, "connect", width, top=False))

    for step in ("voice", "deployment", "advanced", "overview"):
        await _open(page, base, step)
        shots.append(await _shot(page, out, step, width))
    return shots


async def make_screens(out: Path, widths: tuple[int, ...] = WIDTHS,
                       chromium: str = "/usr/bin/chromium") -> list[Path]:
    """Write ``<step>-<width>.png`` for every step and width into ``out``."""
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    shots: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="clgwd-screens-") as tmp:
        base_dir = Path(tmp)
        async with RefCloud(base_dir / "refcloud", "127.0.0.1", 0) as cloud:
            daemon, task, base = await _start_daemon(base_dir, cloud)
            try:
                store = daemon.component("store")
                assert isinstance(store, Store)
                code = await auth.device_setup_code(store.secrets)
                async with async_playwright() as pw:
                    browser = await pw.chromium.launch(executable_path=chromium,
                                                       headless=True, args=CHROMIUM_ARGS)
                    pages: list[tuple[int, Any, Page]] = []
                    for width in widths:
                        context = await browser.new_context(
                            ignore_https_errors=True,
                            viewport={"width": width, "height": HEIGHT.get(width, 800)})
                        page = await context.new_page()
                        await page.goto(f"{base}/")
                        await page.wait_for_selector("#view-setup:not([hidden])")
                        shots.append(await _shot(page, out, "setup", width))
                        pages.append((width, context, page))
                    for index, (width, context, page) in enumerate(pages):
                        if index == 0:
                            await page.fill("#setup-code", code)
                            await page.fill("#setup-pw", PASSWORD)
                            await page.fill("#setup-pw2", PASSWORD)
                            await page.click("#setup-form button[type=submit]")
                        else:
                            await page.reload()
                            await page.wait_for_selector("#view-login:not([hidden])")
                            await page.fill("#login-pw", PASSWORD)
                            await page.click("#login-form button[type=submit]")
                        await page.wait_for_selector("#logout:not([hidden])")
                        shots += await _walk(page, base, out, width, cloud=cloud,
                                             first=index == 0)
                        await context.close()
                    await browser.close()
            finally:
                daemon.request_stop("screens done")
                await asyncio.wait_for(task, 30)
    return shots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screens",
                        help="where to write the PNGs (default docs/screens)")
    parser.add_argument("--widths", type=int, nargs="+", default=list(WIDTHS),
                        help="viewport widths in px (default 1280 390)")
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium")
    if chromium is None:
        print("chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 69
    shots = asyncio.run(make_screens(args.out, tuple(args.widths), chromium))
    total = sum(p.stat().st_size for p in shots)
    print(f"wrote {len(shots)} screenshots, {total // 1024} KB, into {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
