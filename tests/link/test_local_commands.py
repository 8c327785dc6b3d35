"""``cloud.status`` and ``cloud.enroll`` on the router (the onboarding page's front door)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import threading
import time
from pathlib import Path

import pytest

from clgwd.commands import CommandContext
from clgwd.link.connection import ALERT_AUTH, LinkState
from clgwd.link.enroll import EnrollmentRejected
from clgwd.link.identity import Enrollment
from clgwd.link.local import CloudNotConfigured, InvalidEnrollment, enroll_params, status_view
from clgwd.store import Severity
from tests.link.harness import gateway_config, refcloud, running_gateway, wait_for

WEB = CommandContext(actor="local:web:admin")


def _enrollment(url: str = "https://cloud.test") -> Enrollment:
    now = dt.datetime.now(dt.UTC)
    return Enrollment("gw-1", "acme", url, now, now + dt.timedelta(days=7))


def test_status_view_maps_link_states() -> None:
    """Each LinkState maps to one of the four page states; alerts explain a down link."""
    url = "https://cloud.test"
    enrolled = _enrollment()

    def view(state: str, enrollment: Enrollment | None = enrolled,
             alert: str | None = None) -> dict[str, object]:
        return status_view(state=state, enrollment=enrollment, cloud_url=url, since=1.0,
                           message="msg", alert=alert)

    assert view("online")["link"] == "connected"
    assert view("connecting")["link"] == "connecting"
    assert view("backoff")["link"] == "disconnected"
    assert view("stopped")["link"] == "disconnected"
    assert view("not_enrolled")["link"] == "connecting"  # files newer than the poll
    down = view("auth_failed", alert="the cloud refused this gateway (HTTP 403)")
    assert down["link"] == "disconnected" and "HTTP 403" in str(down["message"])
    assert view("online", alert="stale")["message"] == "msg"
    none = view("not_enrolled", enrollment=None)
    assert none == {"enrolled": False, "account_id": None, "link": "not_enrolled",
                    "since": 1.0, "message": "msg"}
    other = view("not_enrolled", enrollment=_enrollment("https://old.test"))
    assert other["enrolled"] is False and other["account_id"] == "acme"


def test_enroll_params_are_validated_and_the_token_wrapped() -> None:
    """Malformed params are a 422 naming the field; the token becomes a Secret."""
    account, token = enroll_params({"account_id": "acme_1", "token": " tok-12345678 "})
    assert account == "acme_1" and token.reveal() == "tok-12345678"
    assert "tok-12345678" not in repr(token)
    for params, field in (({"account_id": "a b", "token": "x" * 10}, "account_id"),
                          ({"account_id": "acme", "token": "short"}, "token"),
                          ({"account_id": "acme", "token": 12345678}, "token"),
                          ({"account_id": "acme", "token": "x" * 10, "extra": 1}, "extra")):
        with pytest.raises(InvalidEnrollment, match=field) as info:
            enroll_params(params)
        assert info.value.http_status == 422
        assert "x" * 10 not in info.value.message


async def test_enroll_from_the_router_connects_and_never_leaks_the_token(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Wrong token: a clear rejection; right token: enrolled, then connected."""
    caplog.set_level(logging.DEBUG)
    async with refcloud(tmp_path / "cloud") as cloud:
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file)
        async with running_gateway(config) as gw:
            await wait_for(lambda: gw.link.state.value == "not_enrolled")
            status = await gw.commands.call("cloud.status", {}, WEB)
            assert status["enrolled"] is False and status["link"] == "not_enrolled"
            assert status["account_id"] is None and "not enrolled" in status["message"]
            with pytest.raises(EnrollmentRejected, match="refused the enrollment"):
                await gw.commands.call("cloud.enroll", {"account_id": "acme",
                                                        "token": "wrong-token-123"}, WEB)
            token = await cloud.create_token("acme")
            assert gw.commands.is_mutating("cloud.enroll")
            result = await gw.commands.call("cloud.enroll",
                                            {"account_id": "acme", "token": token}, WEB)
            assert result["enrolled"] is True and result["account_id"] == "acme"
            assert result["link"] in {"connecting", "connected"}
            assert set(result) == {"enrolled", "account_id", "link", "since", "message",
                                   "cloud_url", "cloud_url_source", "cloud_url_set_by",
                                   "cloud_ca_saved"}
            assert (result["cloud_url"], result["cloud_url_source"]) == (cloud.url, "file")
            await gw.online()
            status = await gw.commands.call("cloud.status", {}, WEB)
            assert status["link"] == "connected" and status["message"].startswith("online")
    assert token not in caplog.text and "wrong-token-123" not in caplog.text
    assert token not in str(result)


async def test_auth_failure_alert_is_the_status_message(tmp_path: Path) -> None:
    """A link that stopped retrying shows the alert that says why."""
    async with refcloud(tmp_path / "cloud") as cloud:
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file)
        async with running_gateway(config) as gw:
            await gw.commands.call("cloud.enroll", {"account_id": "acme",
                                                    "token": await cloud.create_token("acme")},
                                   WEB)
            await gw.online()
            await gw.store.alerts.raise_alert(ALERT_AUTH, Severity.CRITICAL,
                                              "the cloud refused this gateway (HTTP 403)")
            gw.link._set_state(gw.link.state.AUTH_FAILED, "stopped")  # as _block does
            status = await gw.commands.call("cloud.status", {}, WEB)
            assert status["link"] == "disconnected"
            assert status["message"] == "the cloud refused this gateway (HTTP 403)"


async def test_enroll_without_cloud_url_says_what_to_set(tmp_path: Path) -> None:
    """No cloud.url: a 409 that names the setting, and nothing is sent anywhere."""
    config = gateway_config(tmp_path, None, None)
    async with running_gateway(config) as gw:
        with pytest.raises(CloudNotConfigured, match=r"cloud\.url") as info:
            await gw.commands.call("cloud.enroll", {"account_id": "acme",
                                                    "token": "token-12345678"}, WEB)
        assert info.value.http_status == 409
        status = await gw.commands.call("cloud.status", {}, WEB)
        assert status["link"] == "not_enrolled" and status["enrolled"] is False


async def test_link_connects_promptly_after_enrolling(tmp_path: Path) -> None:
    """Enrolling wakes the idle link explicitly: online < 0.5 s after cloud.enroll, even
    when the enrollment lands while the link is reading its (old) identity files."""
    async with refcloud(tmp_path / "cloud") as cloud:
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file)
        async with running_gateway(config) as gw:
            await wait_for(lambda: gw.link.state == LinkState.NOT_ENROLLED)
            reading, release = threading.Event(), threading.Event()
            load = gw.link.files.load

            def slow_first_load() -> Enrollment | None:
                gw.link.files.load = load  # type: ignore[method-assign]
                result = load()
                reading.set()
                release.wait(5)
                return result

            gw.link.files.load = slow_first_load  # type: ignore[method-assign]
            await gw.link.apply_config(config)  # the link re-reads its identity ...
            assert await asyncio.to_thread(reading.wait, 5)
            token = await cloud.create_token("acme")  # ... and enrollment lands meanwhile
            await gw.commands.call("cloud.enroll", {"account_id": "acme", "token": token},
                                   WEB)
            started = time.monotonic()
            release.set()
            await gw.online(limit=5)
            elapsed = time.monotonic() - started
            assert elapsed < 0.5, f"link online {elapsed:.2f} s after enrolling"
