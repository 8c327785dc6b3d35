"""Playwright helpers: Debian's Chromium (never `playwright install`), loopback only,
axe-core from npm into a cache dir, screenshots under test-artifacts/."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "web"
AXE_CACHE = Path(os.environ.get("CLGWD_TEST_CACHE", Path.home() / ".cache" / "clgwd-tests"))
AXE_VERSION = "4"

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
    "--no-first-run", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-default-apps", "--disable-extensions",
    "--metrics-recording-only", "--no-default-browser-check", "--disable-domain-reliability",
    "--disable-client-side-phishing-detection", "--no-pings",
    # Names resolve to nothing: the page is opened by 127.0.0.1 and needs nothing else.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]


def axe_source() -> str:
    """axe-core's browser bundle, installed once with npm into a cache dir (blocking)."""
    path = AXE_CACHE / "axe" / "node_modules" / "axe-core" / "axe.min.js"
    if not path.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed (needed for axe-core)")
        subprocess.run([npm, "install", "--prefix", str(AXE_CACHE / "axe"),
                        f"axe-core@{AXE_VERSION}", "--no-audit", "--no-fund"],
                       check=True, capture_output=True, timeout=180)
    return path.read_text(encoding="utf-8")


async def check_axe(page: Any, axe: str, name: str) -> None:
    """No serious or critical axe violations on the page as it is now."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.evaluate(axe)
    result = await page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".filter(v => ['serious', 'critical'].includes(v.impact))"
        ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target)}))")
    assert result == [], f"{name}: {json.dumps(result, indent=1)}"


async def shot(page: Any, name: str) -> None:
    await asyncio.to_thread(ARTIFACTS.mkdir, parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def no_horizontal_scroll(page: Any) -> bool:
    return bool(await page.evaluate(
        "document.documentElement.scrollWidth <= window.innerWidth"))


async def first_visit(page: Any, base: str, setup_code: str, password: str) -> None:
    """Setup code and admin password on a fresh gateway; ends on the Gateway step."""
    await page.goto(f"{base}/")
    await page.wait_for_selector("#view-setup:not([hidden])")
    await page.fill("#setup-code", setup_code)
    await page.fill("#setup-pw", password)
    await page.fill("#setup-pw2", password)
    await page.click("#setup-form button[type=submit]")
    await page.wait_for_selector("#view-gateway:not([hidden])")
