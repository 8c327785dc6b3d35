"""Every error code in docs/api.md has a sentence for the technician and a next step."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp

from clgwd.web.messages import HUMAN
from tests.web.conftest import Gateway, setup_admin

ROOT = Path(__file__).resolve().parents[2]
RAW = re.compile(r"\[\d+\]|\w+\.\w+:|[a-z]+_[a-z_]+\b|Errno|Traceback|\{|\}")
"""What must not be in a headline: key paths (ports[0].name:), snake_case, exceptions."""


def _documented_codes() -> list[str]:
    text = (ROOT / "docs" / "api.md").read_text()
    section = text.split("\n## Error codes", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z_]+)` \|", section, re.MULTILINE)


def _raised_codes() -> set[str]:
    codes = set()
    for path in (ROOT / "clgwd").rglob("*.py"):
        if "refcloud" in path.parts:
            continue  # the reference cloud's errors never reach the gateway's page
        codes |= set(re.findall(r'^\s+code = "([a-z_]+)"', path.read_text(), re.MULTILINE))
    return codes


def test_every_documented_code_has_a_human_message() -> None:
    """Walk docs/api.md "Error codes": each code has a title and a next step in plain
    words (no key paths, snake_case identifiers or exception names), and the table is
    the catalogue, row for row."""
    documented = _documented_codes()
    assert len(documented) >= 40
    for code in documented:
        assert code in HUMAN, f"{code}: no human message in clgwd/web/messages.py"
        title, next_step = HUMAN[code]
        for text in (title, next_step):
            assert len(text) > 15 and text[0].isupper() and text.endswith("."), (code, text)
        assert not RAW.search(title), f"{code}: raw internals in the title: {title!r}"
    assert sorted(documented) == sorted(HUMAN)


def test_every_code_the_gateway_raises_is_documented() -> None:
    """A new error class cannot ship without its row (and so its human message)."""
    missing = _raised_codes() - set(_documented_codes())
    assert not missing, f"codes raised but not in docs/api.md 'Error codes': {missing}"


async def test_error_answers_carry_the_human_message(gateway: Gateway,
                                                     client: aiohttp.ClientSession) -> None:
    """An error answer keeps the technical message and adds title and next; the
    catalogue is public so the page can explain codes inside 2xx answers."""
    async with client.post(f"{gateway.base}/api/v1/session/login",
                           json={"password": "wrong password!!"}) as resp:
        body = await resp.json()
    assert resp.status in (401, 409) and body["title"] and body["next"] and body["message"]
    assert (body["title"], body["next"]) == HUMAN[body["code"]]
    await setup_admin(client, gateway)
    async with client.get(f"{gateway.base}/api/v1/nothing-here") as resp:
        body = await resp.json()
    assert body["code"] == "not_found" and body["title"] == HUMAN["not_found"][0]
    async with client.get(f"{gateway.base}/api/v1/messages") as resp:
        catalog = (await resp.json())["messages"]
    assert catalog["pbx_unreachable"] == {"title": HUMAN["pbx_unreachable"][0],
                                          "next": HUMAN["pbx_unreachable"][1]}
