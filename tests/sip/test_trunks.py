"""The trunk component without third-party peers: validation, storage, reconcile,
answer matching and the reasons a check gives (an in-process UDP responder)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from clgwd.commands import CommandContext, CommandRouter
from clgwd.config import ClgwdConfig
from clgwd.inventory.component import applications
from clgwd.metrics import Metrics
from clgwd.monitor.view import trunks_from
from clgwd.sip.component import SipTrunks, alert_code
from clgwd.sip.digest import authorization, parse_challenge
from clgwd.sip.message import Request, Response, parse_message
from clgwd.sip.model import APP_SETUP_CLOUD_TRUNK, APP_SETUP_PBX_TRUNK, InvalidTrunk
from clgwd.store import Store

Answer = Callable[[Request], list[bytes]]


def reply(req: Request, status: str = "200 OK", **changes: str) -> bytes:
    fields = {"Via": req.headers.get_all("Via")[0], "From": req.headers.get("From") or "",
              "To": (req.headers.get("To") or "") + ";tag=x", "Call-ID": req.call_id,
              "CSeq": f"{req.cseq[0]} {req.cseq[1]}", **changes}
    head = "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    return f"SIP/2.0 {status}\r\n{head}Content-Length: 0\r\n\r\n".encode()


@contextlib.asynccontextmanager
async def responder(answer: Answer, host: str = "127.0.0.1", port: int = 0
                    ) -> AsyncIterator[int]:
    """A UDP SIP peer on host:port (default 127.0.0.1, any port) that sends what
    ``answer`` returns for each request; yields the port."""
    loop = asyncio.get_running_loop()

    class Proto(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: Any) -> None:
            req = parse_message(data)
            assert isinstance(req, Request)
            for out in answer(req):
                self.transport.sendto(out, addr)  # type: ignore[attr-defined]

    transport, _ = await loop.create_datagram_endpoint(Proto, local_addr=(host, port))
    try:
        yield int(transport.get_extra_info("sockname")[1])
    finally:
        transport.close()


@contextlib.asynccontextmanager
async def running(config: ClgwdConfig, commands: CommandRouter | None = None,
                  metrics: Metrics | None = None) -> AsyncIterator[tuple[SipTrunks, Store]]:
    async with Store(config) as store, SipTrunks(config, store, commands, metrics) as trunks:
        yield trunks, store


def trunk(port: int, **extra: Any) -> dict[str, Any]:
    return {"name": "t1", "host": "127.0.0.1", "port": port, "interval": 30, "timeout": 1,
            **extra}


async def test_answers_with_another_call_id_or_cseq_are_ignored(
        make_config: Callable[..., ClgwdConfig]) -> None:
    """A peer answering with a wrong Call-ID and a wrong CSeq first: both are ignored
    and the right answer counts."""
    def answer(req: Request) -> list[bytes]:
        return [reply(req, "500 Wrong", **{"Call-ID": "other"}),
                reply(req, "500 Wrong", CSeq=f"{req.cseq[0] + 1} OPTIONS"), reply(req)]

    async with responder(answer) as port, running(make_config()) as (trunks, _):
        await trunks.add_trunk(trunk(port), "t")
        info = await trunks.check("t1")
        assert (info["state"], info["status_code"]) == ("up", 200)


async def test_only_wrong_answers_time_out_and_say_so(
        make_config: Callable[..., ClgwdConfig]) -> None:
    """Only mismatched answers: the check fails and says they were ignored."""
    async with responder(lambda r: [reply(r, **{"Call-ID": "x"})]) as port, \
            running(make_config()) as (trunks, _):
        await trunks.add_trunk(trunk(port), "t")
        info = await trunks.check("t1")
        assert info["state"] == "unknown"
        assert "answer(s) with another Call-ID/CSeq ignored" in info["reason"]


async def test_malformed_answer_is_named_in_the_reason(
        make_config: Callable[..., ClgwdConfig]) -> None:
    """A garbled answer carrying our branch is ignored and named when the check fails."""
    async with responder(lambda r: [reply(r).replace(b"CSeq: ", b"CSeq: x")]) as port, \
            running(make_config()) as (trunks, _):
        await trunks.add_trunk(trunk(port), "t")
        info = await trunks.check("t1")
        assert "malformed answer ignored: CSeq" in info["reason"]


@pytest.mark.parametrize(("status", "note"), [
    ("404 Not Found", "reachable, refuses OPTIONS"),
    ("405 Method Not Allowed", "reachable, refuses OPTIONS"),
    ("501 Not Implemented", "reachable, refuses OPTIONS"),
    ("401 Unauthorized", "reachable, asks for authentication (no credentials set)"),
])
async def test_refusals_count_as_reachable_with_a_note(
        make_config: Callable[..., ClgwdConfig], status: str, note: str) -> None:
    """403/404/405/501 (and a challenge without credentials) prove the peer is there."""
    async with responder(lambda r: [reply(r, status)]) as port, \
            running(make_config()) as (trunks, _):
        await trunks.add_trunk(trunk(port), "t")
        info = await trunks.check("t1")
        assert (info["state"], info["note"]) == ("up", note)


async def test_other_errors_fail_and_three_make_the_trunk_down(
        make_config: Callable[..., ClgwdConfig]) -> None:
    """A 500 is a failure; after 3 the trunk is down and its alert is raised."""
    async with responder(lambda r: [reply(r, "500 Server Internal Error")]) as port, \
            running(make_config()) as (trunks, store):
        await trunks.add_trunk(trunk(port), "t")
        for _ in range(3):
            info = await trunks.check("t1")
        assert (info["state"], info["reason"]) == ("down",
                                                   "answered 500 Server Internal Error")
        alerts = await store.alerts.active()
        assert [a.code for a in alerts] == [alert_code("t1")]
        assert "500 Server Internal Error" in alerts[0].message


async def test_unresolvable_host_names_dns(make_config: Callable[..., ClgwdConfig]) -> None:
    """A host name that does not resolve fails with a DNS reason."""
    async with running(make_config()) as (trunks, _):
        await trunks.add_trunk({"name": "nx", "host": "no-such-host.invalid",
                                "interval": 30, "timeout": 1}, "t")
        info = await trunks.check("nx")
        assert info["reason"].startswith("DNS: cannot resolve no-such-host.invalid")


@pytest.mark.parametrize(("data", "message"), [
    ({"name": "a b", "host": "127.0.0.1"}, "name: String should match pattern"),
    ({"name": "a", "host": "bad host!"}, "host: must be an IP address or a DNS name"),
    ({"name": "a", "host": "127.0.0.1", "port": 70000}, "port: must be 1-65535"),
    ({"name": "a", "host": "127.0.0.1", "transport": "sctp"}, "transport: Input should be"),
    ({"name": "a", "host": "127.0.0.1", "interval": 0.5}, "interval: Input should be greater"),
    ({"name": "a", "host": "127.0.0.1", "interval": 2, "timeout": 5},
     "timeout (5 s) must not be longer than interval (2 s)"),
    ({"name": "a", "host": "127.0.0.1", "server_name": "x.example"}, "apply to transport tls"),
    ({"name": "a", "host": "127.0.0.1", "password": "p"}, "username: must be set"),
    ({"name": "a", "host": "127.0.0.1", "transport": "tls", "ca_file": "/nonexistent.pem"},
     "ca_file: cannot use /nonexistent.pem"),
    ({"name": "a", "host": "127.0.0.1", "pbx": "Nope"}, "pbx: 'Nope' is not a configured PBX"),
])
async def test_bad_trunks_are_refused_naming_the_field(
        make_config: Callable[..., ClgwdConfig], data: dict[str, Any], message: str) -> None:
    """Every validation error names the field a technician must fix."""
    async with running(make_config()) as (trunks, _):
        with pytest.raises(InvalidTrunk) as err:
            await trunks.add_trunk(data, "t")
        assert message in err.value.message


async def test_names_are_unique_and_removal_clears_everything(
        make_config: Callable[..., ClgwdConfig]) -> None:
    """A second trunk with the same name is refused; removing stops its monitor and
    clears its alert."""
    async with responder(lambda r: [reply(r, "500 X")]) as port, \
            running(make_config()) as (trunks, store):
        await trunks.add_trunk(trunk(port), "t")
        with pytest.raises(InvalidTrunk, match="name: a trunk named 't1' exists already"):
            await trunks.add_trunk(trunk(port), "t")
        for _ in range(3):
            await trunks.check("t1")
        assert await store.alerts.active()
        await trunks.remove_trunk("t1", "t")
        assert trunks.listing()["trunks"] == [] and trunks._running == {}
        assert await store.alerts.active() == []


async def test_password_is_encrypted_kept_on_edit_and_never_returned(
        make_config: Callable[..., ClgwdConfig]) -> None:
    """The digest password is stored in the secret box, survives an edit that omits it
    and a restart, and no answer shows it."""
    config = make_config()
    async with running(config) as (trunks, store):
        await trunks.add_trunk(trunk(5, username="u", password="very-secret-1"), "t")
        await trunks.add_trunk(trunk(5, username="u", interval=20), "t", replace=True)
        assert "very-secret-1" not in str(trunks.listing())
        assert trunks.listing()["trunks"][0]["password_set"] is True
        rows = await store.db.fetchall("SELECT * FROM secrets")
        assert rows and all("very-secret-1" not in str(tuple(r)) for r in rows)
    async with running(config) as (trunks, _):
        assert trunks._running["t1"].monitor.password is not None
        assert trunks._running["t1"].monitor.password.reveal() == "very-secret-1"
        assert trunks._running["t1"].monitor.spec.interval == 20


async def test_changes_are_reconciled_without_restart(
        make_config: Callable[..., ClgwdConfig]) -> None:
    """Editing a trunk replaces its monitor; other trunks keep theirs."""
    async with running(make_config()) as (trunks, _):
        await trunks.add_trunk(trunk(5), "t")
        await trunks.add_trunk({**trunk(6), "name": "t2"}, "t")
        first, other = trunks._running["t1"].monitor, trunks._running["t2"].monitor
        await trunks.add_trunk(trunk(7), "t", replace=True)
        assert trunks._running["t1"].monitor is not first
        assert trunks._running["t1"].monitor.spec.port == 7
        assert trunks._running["t2"].monitor is other
        assert first is not None and trunks.scope.crashes == 0


async def test_app_setup_derives_two_trunks_and_delete_removes_both(
        make_config: Callable[..., ClgwdConfig]) -> None:
    """Saving the SIP Trunk Application Setup creates PBX<->MBG and MBG<->cloud trunks;
    deleting it removes both; they cannot be removed one by one."""
    setup = {"primary_pbx": {"name": "MiVB-A", "host": "127.0.0.1", "port": 5060},
             "secondary_pbx": {"name": "MiVB-B", "host": "127.0.0.2"},
             "mbg": {"name": "MBG", "host": "localhost", "port": 5061, "transport": "tls",
                     "server_name": "localhost"},
             "teleworker_fqdn": "tw.example.com"}
    async with running(make_config()) as (trunks, _):
        result = await trunks.set_app_setup(setup, "t")
        names = {t["name"]: t for t in result["trunks"]}
        assert set(names) == {APP_SETUP_PBX_TRUNK, APP_SETUP_CLOUD_TRUNK}
        assert names[APP_SETUP_PBX_TRUNK]["target"] == "127.0.0.1:5060"
        assert names[APP_SETUP_CLOUD_TRUNK]["transport"] == "tls"
        assert result["app_setup"]["teleworker_fqdn"] == "tw.example.com"
        with pytest.raises(InvalidTrunk, match="belongs to the application setup"):
            await trunks.remove_trunk(APP_SETUP_PBX_TRUNK, "t")
        await trunks.add_trunk({"name": "x", "host": "127.0.0.1", "pbx": "MiVB-B"}, "t")
        with pytest.raises(InvalidTrunk, match=r"app_setup\.mbg\.host: must be an IP"):
            await trunks.set_app_setup({**setup, "mbg": {"name": "M", "host": "no way"}}, "t")
        result = await trunks.set_app_setup(None, "t")
        assert [t["name"] for t in result["trunks"]] == ["x"] and result["app_setup"] is None


async def test_router_commands_and_metrics(make_config: Callable[..., ClgwdConfig]) -> None:
    """The cloud may get, set and check trunks; metrics follow each check."""
    commands, metrics = CommandRouter(), Metrics()
    cloud = CommandContext(actor="cloud")
    async with responder(lambda r: [reply(r)]) as port, \
            running(make_config(), commands, metrics) as (trunks, _):
        await commands.call("sip.trunks.set", {"trunk": trunk(port)}, cloud)
        checked = await commands.call("sip.trunks.check", {"name": "t1"}, cloud)
        assert checked["state"] == "up"
        listed = await commands.call("sip.trunks.get", {}, cloud)
        assert [t["name"] for t in listed["trunks"]] == ["t1"]
        text = metrics.render().decode()
        assert 'clgwd_sip_options_sent_total{trunk="t1"} 1.0' in text
        assert 'clgwd_sip_trunk_rtt_seconds_count{transport="udp"} 1.0' in text
        status = trunks.tracker.current
        assert status.details["up"] == 1 and status.message == "1 of 1 SIP trunks up"
        assert [t["state"] for t in status.details["trunks"]] == ["up"]
        with pytest.raises(InvalidTrunk, match="give exactly one of"):
            await commands.call("sip.trunks.set", {"remove": "t1", "trunk": {}}, cloud)
        await commands.call("sip.trunks.set", {"remove": "t1"}, cloud)
        assert 'trunk="t1"' not in metrics.render().decode()


def test_digest_matches_rfc2617_example() -> None:
    """The RFC 2617 §3.5 example (qop=auth) gives its published response."""
    challenge = parse_challenge(
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"')
    value = authorization(challenge, "GET", "/dir/index.html", "Mufasa", "Circle Of Life",
                          cnonce="0a4f113b", nc=1)
    assert 'response="6629fae49393a05397450978507c4ef1"' in value
    assert 'opaque="5ccc069c403ebaf9f0171e9517f40e41"' in value


async def test_a_reply_to_our_request_parses_as_response() -> None:
    """Sanity: the responder's replies are well-formed for our parser."""
    req = parse_message(b"OPTIONS sip:h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
                        b"From: <sip:a@h>;tag=1\r\nTo: <sip:h>\r\nCall-ID: c\r\n"
                        b"CSeq: 1 OPTIONS\r\n\r\n")
    assert isinstance(req, Request)
    assert isinstance(parse_message(reply(req)), Response)


@pytest.mark.parametrize(("family", "expect"), [
    ("mivb", "CloudLink"), ("mx-one", "CloudLink Gateway"), ("mv5000", "CLOUDLINK"),
    ("mvo400", "PISN users"), ("other", "OPTIONS keep-alive"),
])
async def test_pbx_side_guidance_is_rendered_from_the_trunk(
        make_config: Callable[..., ClgwdConfig], family: str, expect: str) -> None:
    """sip.trunks.guidance gives the family's PBX settings with the trunk's transport and
    port, marked as guidance; MiVoice 5000 on port 5070 gets a warning."""
    commands = CommandRouter()
    async with running(make_config(), commands) as (trunks, _):
        await trunks.add_trunk({"name": "g", "host": "127.0.0.1", "port": 5070,
                                "transport": "tcp", "pbx_family": family}, "t")
        out = await commands.call("sip.trunks.guidance", {"name": "g"}, CommandContext("cloud"))
        values = {s["field"]: s["value"] for s in out["settings"]}
        assert out["guidance"] is True and expect in str(out)
        assert (values["Transport"], values["Port"]) == ("TCP", "5070")
        assert any("other than 5070" in n for n in out["notes"]) == (family == "mv5000")


async def test_secondary_pbx_answers_when_the_primary_does_not(
        make_config: Callable[..., ClgwdConfig]) -> None:
    """The setup's PBX trunk checks the secondary PBX when the primary is silent: up,
    with a note naming both; both silent: the reason names both."""
    async with responder(lambda r: []) as port, running(make_config()) as (trunks, _):
        setup = {"primary_pbx": {"name": "A", "host": "127.0.0.1", "port": port,
                                 "transport": "udp"},
                 "secondary_pbx": {"name": "B", "host": "127.0.0.2"},
                 "mbg": {"name": "M", "host": "127.0.0.1", "port": port, "transport": "udp"},
                 "interval": 30, "timeout": 1}
        await trunks.set_app_setup(setup, "t")
        info = await trunks.check(APP_SETUP_PBX_TRUNK)
        assert not info["status_code"]
        assert f"; secondary 127.0.0.2:{port}: no answer" in info["reason"]
        async with responder(lambda r: [reply(r)], "127.0.0.2", port):
            info = await trunks.check(APP_SETUP_PBX_TRUNK)
        assert (info["state"], info["status_code"]) == ("up", 200)
        assert info["note"].startswith(f"answered by the secondary 127.0.0.2:{port}; primary "
                                       f"127.0.0.1:{port}: no answer within 1 s")


async def test_status_details_feed_the_monitor_and_the_inventory(
        make_config: Callable[..., ClgwdConfig]) -> None:
    """The trunks' status details carry each trunk's state, RTT and the peer's Server
    header in the shape the monitor (SNMP, MQTT, /metrics) and the inventory read."""
    async with responder(lambda r: [reply(r, Server="Kamailio (5.6.3 (x86_64/linux))")]) \
            as port, running(make_config()) as (trunks, _):
        await trunks.add_trunk(trunk(port), "t")
        info = await trunks.check("t1")
        assert info["server"] == "Kamailio (5.6.3 (x86_64/linux))"
        statuses = {"trunks": trunks.tracker.current}
        assert statuses["trunks"].details["total"] == 1
        [view] = trunks_from(statuses)
        assert (view.name, view.state, view.server) == (
            "t1", "up", "Kamailio (5.6.3 (x86_64/linux))")
        assert view.rtt_ms is not None and view.rtt_ms == info["rtt_ms"]
        apps = applications("gw", make_config().pbx, statuses)
        assert {"name": "t1", "type": "sip-trunk-peer", "platform": None,
                "version": "Kamailio (5.6.3 (x86_64/linux))"} in apps
