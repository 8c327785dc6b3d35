"""docs/protocol.md's JSON schema matches what both sides really send."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from clgwd.commands import PROTOCOL_METHODS
from clgwd.protocol import rpc as p
from clgwd.protocol.rpc import RpcFailed
from tests.link.harness import enroll_gateway, gateway_config, refcloud, running_gateway, wait_for


def _schema() -> dict[str, Any]:
    text = resources.files("clgwd.protocol").joinpath("schemas/clgwd-v1.schema.json").read_text()
    return dict(json.loads(text))


def _validate_traffic(schema: dict[str, Any], traffic: list[tuple[str, str, str]]) -> set[str]:
    """Validate envelopes and, per method, params and results; returns methods seen."""
    jsonschema.Draft202012Validator.check_schema(schema)
    envelope = jsonschema.Draft202012Validator(schema)
    methods = schema["$defs"]["methods"]
    asked: dict[tuple[str, Any], str] = {}
    seen: set[str] = set()
    for sender, _, text in traffic:
        message = json.loads(text)
        envelope.validate(message)
        if "method" in message:
            seen.add(message["method"])
            _check_part(schema, methods.get(message["method"], {}), "params", message["params"])
            if "id" in message:
                asked[(sender, message["id"])] = message["method"]
        elif "result" in message:
            other = "cloud" if sender == "gateway" else "gateway"
            method = asked.get((other, message["id"]))
            if method:
                _check_part(schema, methods.get(method, {}), "result", message["result"])
    return seen


def _check_part(schema: dict[str, Any], spec: dict[str, Any], part: str, value: Any) -> None:
    if part in spec:
        sub = {**spec[part], "$defs": schema["$defs"]}
        jsonschema.Draft202012Validator(sub).validate(value)


def test_command_methods_match_the_router() -> None:
    """The protocol module and the command router name the same command methods."""
    assert set(p.COMMAND_METHODS) == set(PROTOCOL_METHODS)


def test_schema_rejects_a_bad_hello() -> None:
    """The schema is strict enough to catch a wrong hello (so the traffic test can fail)."""
    schema = _schema()
    bad = {"gateway_id": "nope", "version": "1", "protocol": 1, "capabilities": [],
           "last_acked_seq": 0, "time": 1.0}
    with pytest.raises(jsonschema.ValidationError):
        _check_part(schema, schema["$defs"]["methods"]["hello"], "params", bad)


def test_schema_rejects_a_bad_tunnel_authority_key() -> None:
    """The enrollment answer's tunnel key must be a 32-byte key in base64."""
    schema = _schema()
    validator = jsonschema.Draft202012Validator({**schema["$defs"]["enrollment_answer"],
                                                 "$defs": schema["$defs"]})
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({"gateway_id": "gw-" + "0" * 32, "certificate": "-----BEGIN "
                            "CERTIFICATE-----", "ca": "-----BEGIN CERTIFICATE-----",
                            "not_after": 1.0, "tunnel_authority_key": "c2hvcnQ="})


async def test_recorded_traffic_of_both_sides_matches_schema(tmp_path: Path) -> None:
    """Every message of a session with all message types validates against the schema."""
    traffic: list[tuple[str, str, str]] = []
    async with refcloud(tmp_path / "cloud", cert_lifetime=dt.timedelta(seconds=6)) as cloud:
        enrollments: list[str] = []
        cloud.tap = lambda d, t: enrollments.append(t) if d == "enroll" else None
        config = gateway_config(tmp_path, cloud.url, cloud.ca_file)
        await enroll_gateway(config, cloud)
        cloud.tap = lambda d, t: traffic.append(("cloud", d, t)) if d == "out" else None
        async with running_gateway(config) as gw:
            gw.link.tap = lambda d, t: traffic.append(("gateway", d, t)) if d == "out" else None
            await gw.online()
            await gw.enqueue("event", {"id": "e1"})
            await gw.enqueue("status", {"at": 1.0}, coalesce_key="status")
            gid = gw.link.gateway_id or ""
            await cloud.command(gid, "status.report", {})
            with pytest.raises(RpcFailed):
                await cloud.command(gid, "update.apply", {})
            with pytest.raises(RpcFailed):
                await cloud.command(gid, "bogus", {})
            await cloud.sessions[gid].ws.send_str("{not json")
            await wait_for(lambda: _depth_zero(gw))
            await asyncio.sleep(2.5)  # certificate renewal (6 s lifetime) happens by now
            old = cloud.sessions[gid]
            await old.goaway(0, "test")
            await wait_for(lambda: cloud.sessions.get(gid) not in (None, old))
            await gw.online()
    schema = _schema()
    assert len(enrollments) == 1
    answer = json.loads(enrollments[0])
    assert "tunnel_authority_key" in answer
    jsonschema.Draft202012Validator({**schema["$defs"]["enrollment_answer"],
                                     "$defs": schema["$defs"]}).validate(answer)
    seen = _validate_traffic(schema, traffic)
    assert {p.HELLO, p.EVENT_PUSH, p.CERT_RENEW, p.GOAWAY, "status.report"} <= seen


async def _depth_zero(gw: Any) -> bool:
    return bool(await gw.store.outbox.depth() == 0)
