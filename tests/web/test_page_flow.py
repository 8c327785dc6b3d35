"""The page's flow (issue 15): the stepper, the password confirmation, Enroll hidden once
enrolled, the lockout countdown, and tables as cards at phone width."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

from clgwd.web import auth
from tests.web.browser import check_axe, first_visit, no_horizontal_scroll, shot
from tests.web.conftest import PASSWORD, Gateway, setup_admin
from tests.web.test_browser import _goto, _page, axe, browser

__all__ = ["axe", "browser"]  # fixtures shared with test_browser.py


async def _wrong_logins(client: aiohttp.ClientSession, gw: Gateway,
                        count: int) -> list[tuple[int, dict[str, Any]]]:
    answers = []
    for _ in range(count):
        async with client.post(f"{gw.base}/api/v1/session/login",
                               json={"password": "wrong password!"}) as resp:
            answers.append((resp.status, await resp.json()))
    return answers


async def test_the_failure_that_locks_out_says_for_how_long(
        gateway: Gateway, client: aiohttp.ClientSession) -> None:
    """The wrong password that starts a lockout carries retry_after (the page counts it
    down); the ones before it do not; GET /session tells a reloaded page the rest."""
    csrf = await setup_admin(client, gateway)
    async with client.post(f"{gateway.base}/api/v1/session/logout",
                           headers={"X-CSRF-Token": csrf}) as resp:
        assert resp.status == 200
    async with client.get(f"{gateway.base}/api/v1/session") as resp:
        assert "locked_for" not in await resp.json()
    answers = await _wrong_logins(client, gateway, auth.FREE_FAILURES)
    assert [s for s, _ in answers] == [401] * auth.FREE_FAILURES
    assert all("retry_after" not in body for _, body in answers[:-1])
    assert answers[-1][1]["retry_after"] == 2
    async with client.get(f"{gateway.base}/api/v1/session") as resp:
        assert 1 <= (await resp.json())["locked_for"] <= 2
    async with client.post(f"{gateway.base}/api/v1/session/login",
                           json={"password": PASSWORD}) as resp:
        assert resp.status == 429
        body = await resp.json()
        assert body["retry_after"] == int(resp.headers["Retry-After"]) >= 1


async def test_wrong_setup_codes_lock_out_with_retry_after(
        gateway: Gateway, client: aiohttp.ClientSession) -> None:
    """The setup form counts down too: the wrong setup code that starts the lockout
    carries retry_after, and GET /session (no password yet) gives locked_for."""
    statuses = []
    for _ in range(auth.FREE_FAILURES):
        async with client.post(f"{gateway.base}/api/v1/session/setup",
                               json={"setup_code": "AAAAA-AAAAA",
                                     "password": PASSWORD}) as resp:
            statuses.append((resp.status, await resp.json()))
    assert [s for s, _ in statuses] == [401] * auth.FREE_FAILURES
    assert statuses[-1][1]["retry_after"] == 2 and "retry_after" not in statuses[0][1]
    async with client.get(f"{gateway.base}/api/v1/session") as resp:
        body = await resp.json()
    assert body["setup_required"] is True and body["locked_for"] >= 1


async def _wait_state(page: Any, step: str, state: str) -> None:
    await page.wait_for_selector(f"nav li[data-step={step}][data-state={state}]")


@pytest.mark.peers
@pytest.mark.timeout(150)
async def test_stepper_confirmation_and_enroll_once(cloud_gateway: Gateway, browser: Any,
                                                    axe: str) -> None:
    """After the password is set the Gateway step confirms it; the stepper marks the
    step shown with aria-current="step" and each step's state in words (next, done,
    to do) as the site is saved and the gateway enrolled; once enrolled the Enroll form
    is hidden, and enrolling again needs a confirmation."""
    gw = cloud_gateway
    assert gw.cloud is not None
    context, page, csp_errors = await _page(browser)
    await first_visit(page, gw.base, gw.setup_code, PASSWORD)
    await page.wait_for_selector("#setup-done:has-text('Admin password set')")
    assert await page.get_attribute("#setup-done", "role") == "status"
    assert await page.get_attribute("nav a[href='#gateway']", "aria-current") == "step"
    await _wait_state(page, "gateway", "next")
    assert "(next)" in await page.text_content("nav li[data-step=gateway]")
    assert "(to do)" in await page.text_content("nav li[data-step=pbx]")
    assert "(optional)" in await page.text_content("nav li[data-step=advanced]")
    await check_axe(page, axe, "stepper-first")
    for field, value in (("site_name", "Ballad"), ("city", "Ottawa"), ("country", "Canada"),
                         ("province", "Ontario"), ("postal_code", "K0A 2Z0")):
        await page.fill(f"#{field}", value)
    await page.click("#site-form button[type=submit]")
    await _wait_state(page, "gateway", "done")
    await _wait_state(page, "cloud", "next")
    assert "(done)" in await page.text_content("nav li[data-step=gateway]")

    await page.click("a.next[href='#cloud']")
    await page.wait_for_selector("#view-cloud:not([hidden])")
    assert await page.is_hidden("#setup-done") is True  # the confirmation was for then
    assert await page.get_attribute("nav a[href='#cloud']", "aria-current") == "step"
    assert await page.get_attribute("nav a[href='#gateway']", "aria-current") is None
    await page.wait_for_selector("#enroll-form:not([hidden])")
    assert await page.is_hidden("#enrolled")
    await page.fill("#account_id", "1234567891")
    await page.fill("#enroll_token", await gw.cloud.create_token("1234567891"))
    await page.click("#enroll-form button[type=submit]")
    await page.wait_for_selector("#toast:has-text('Enrolled.')")
    await page.wait_for_selector("#enroll-form", state="hidden")
    await page.wait_for_selector("#enrolled:has-text('This gateway is enrolled')")
    await _wait_state(page, "cloud", "done")
    await _wait_state(page, "pbx", "next")
    await shot(page, "stepper-enrolled")
    page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.dismiss()))
    await page.click("#reenroll")
    assert await page.is_hidden("#enroll-form")
    page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await page.click("#reenroll")
    await page.wait_for_selector("#enroll-form:not([hidden])")
    assert await page.evaluate("document.activeElement.id") == "account_id"
    await page.reload()  # a reload shows the enrolled state again, form hidden
    await page.wait_for_selector("#enrolled:not([hidden])")
    assert await page.is_hidden("#enroll-form")
    await check_axe(page, axe, "stepper-enrolled")
    assert csp_errors == []
    await context.close()


@pytest.mark.peers
@pytest.mark.timeout(150)
async def test_stepper_says_needs_attention_in_words_on_a_phone(
        gateway: Gateway, browser: Any, axe: str) -> None:
    """A step that needs attention (the gateway's derivation, here a failing sync on
    Connect: tests/web/test_nextstep.py) shows "!" and "needs attention" in its link's
    accessible name, also at 390 px where the words are visually hidden; the stepper
    does not make the page scroll sideways."""
    steps = {"gateway": "done", "cloud": "done", "pbx": "done", "connect": "attention",
             "deployment": "todo", "advanced": "optional", "overview": "optional"}

    async def overview(route: Any) -> None:
        response = await route.fetch()
        await route.fulfill(response=response, json={**await response.json(), "steps": steps})

    context, page, csp_errors = await _page(browser, width=390)
    await page.route("**/api/v1/overview", overview)
    await first_visit(page, gateway.base, gateway.setup_code, PASSWORD)
    await _goto(page, gateway, "connect")
    await _wait_state(page, "connect", "attention")
    link = "nav a[href='#connect']"
    assert await page.get_attribute(link, "aria-current") == "step"
    name = await page.evaluate("s => document.querySelector(s).innerText", link)
    assert "!" in name
    assert "(needs attention)" in (await page.text_content(link) or "")
    assert "(done)" in (await page.text_content("nav li[data-step=pbx]") or "")
    assert await no_horizontal_scroll(page)
    await check_axe(page, axe, "stepper-phone")
    await shot(page, "stepper-phone")
    assert csp_errors == []
    await context.close()


@pytest.mark.peers
@pytest.mark.timeout(150)
async def test_login_lockout_counts_down_and_enables_the_button(
        gateway: Gateway, browser: Any, axe: str) -> None:
    """Five wrong passwords: the page says how many seconds are left, counts down with
    the Log in button disabled, keeps counting after a reload, and at 0 enables the
    button again; the right password then logs in."""
    context, page, csp_errors = await _page(browser)
    await first_visit(page, gateway.base, gateway.setup_code, PASSWORD)
    await page.click("#logout")
    await page.wait_for_selector("#view-login:not([hidden])")
    button = "#login-form button[type=submit]"
    for _ in range(auth.FREE_FAILURES):
        await page.fill("#login-pw", "not the password")
        await page.click(button)
        await page.wait_for_selector("#login-form-err:has-text('wrong password')")
        if _ < auth.FREE_FAILURES - 1:
            await page.evaluate("document.querySelector('#login-form-err').textContent = ''")
    await page.wait_for_selector("#login-wait:has-text('You can try again in 2 s')")
    assert await page.is_disabled(button)
    assert await page.get_attribute("#login-wait", "role") == "timer"
    await check_axe(page, axe, "login-locked")
    await page.reload()  # the gateway still knows the lockout
    await page.wait_for_selector("#login-wait:has-text('You can try again in')")
    assert await page.is_disabled(button)
    await page.wait_for_selector(f"{button}:not([disabled])", timeout=4000)
    assert await page.text_content("#login-wait") == ""
    await page.wait_for_selector("#toast:has-text('You can try again now.')")
    await page.fill("#login-pw", PASSWORD)
    await page.click(button)
    await page.wait_for_selector("#view-gateway:not([hidden])")  # where it was
    assert await page.is_visible("#logout")
    assert csp_errors == []
    await context.close()


_CARD_CHECK = """sel => {
  const t = document.querySelector(sel);
  const row = t.querySelector('tbody tr');
  const cell = row.cells[1];
  return {row: getComputedStyle(row).display, head: getComputedStyle(t.tHead).position,
          label: cell.dataset.label, before: getComputedStyle(cell, '::before').content,
          width: t.getBoundingClientRect().width};
}"""


@pytest.mark.peers
@pytest.mark.timeout(150)
async def test_preflight_table_is_cards_on_a_phone(preflight_gateway: Gateway,
                                                   browser: Any, axe: str) -> None:
    """At 390 px the pre-flight results are one card per check, each value labelled with
    its column, and nothing scrolls sideways; at 1280 px they are a table again."""
    gw = preflight_gateway
    context, page, csp_errors = await _page(browser, width=390)
    await first_visit(page, gw.base, gw.setup_code, PASSWORD)
    await page.click("#pf-run")
    await page.wait_for_selector("#pf-table tbody tr")
    cards = await page.evaluate(_CARD_CHECK, "#pf-table")
    assert cards["row"] == "block" and cards["head"] == "absolute"
    assert cards["label"] == "Target" and cards["before"] == '"Target: "'
    assert cards["width"] <= 390
    assert await no_horizontal_scroll(page)
    await check_axe(page, axe, "preflight-phone")
    await shot(page, "preflight-phone")
    await page.set_viewport_size({"width": 1280, "height": 900})
    wide = await page.evaluate(_CARD_CHECK, "#pf-table")
    assert wide["row"] == "table-row" and wide["before"] == "none"
    assert csp_errors == []
    await context.close()


@pytest.mark.peers
@pytest.mark.timeout(150)
async def test_tunnel_and_event_tables_are_cards_on_a_phone(tunnel_gateway: Gateway,
                                                            browser: Any, axe: str) -> None:
    """At 390 px the tunnel and event tables are stacked cards with labelled values, the
    tunnel's buttons still work, and nothing scrolls sideways."""
    gw = tunnel_gateway
    context, page, csp_errors = await _page(browser, width=390)
    await first_visit(page, gw.base, gw.setup_code, PASSWORD)
    await _goto(page, gw, "overview")
    await page.wait_for_selector("#tunnels-table tbody tr")
    await page.click("#tunnels-start-all")
    await page.wait_for_selector("#toast:has-text('All tunnels started.')")
    await page.wait_for_selector("#events tbody tr:has-text('Admin password')")
    tunnels = await page.evaluate(_CARD_CHECK, "#tunnels-table")
    assert tunnels["row"] == "block" and tunnels["label"] == "Target"
    assert tunnels["before"] == '"Target: "'
    events = await page.evaluate(_CARD_CHECK, "#events")
    assert events["row"] == "block" and events["label"] == "Actor"
    assert await no_horizontal_scroll(page)
    assert await page.evaluate(
        "document.querySelector('#events').closest('.scroll').scrollWidth"
        " <= document.querySelector('#events').closest('.scroll').clientWidth")
    await check_axe(page, axe, "tables-phone")
    await shot(page, "tables-phone")
    assert csp_errors == []
    await context.close()
