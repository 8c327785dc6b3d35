"""The system part's commands from the reference cloud: results and errors as
docs/protocol.md says, every message valid against the protocol's JSON schema."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from clgwd.config import ClgwdConfig, load_config
from clgwd.protocol.rpc import RpcFailed
from clgwd.system import DaemonHooks, SystemComponent
from tests.link.harness import FAST_LINK, enroll_gateway, refcloud, running_gateway, wait_for
from tests.link.test_schema import _schema, _validate_traffic

SYSTEM_METHODS = {"system.reboot", "system.factory_reset", "update.schedule", "update.apply",
                  "logs.collect", "config.get", "config.set"}


def _write_config(tmp: Path, cloud_url: str, ca_file: Path) -> Path:
    (tmp / "gw-state").mkdir(parents=True)
    path = tmp / "clgwd.yaml"
    path.write_text(yaml.safe_dump({
        "state": {"dir": str(tmp / "gw-state")},
        "cloud": {**FAST_LINK, "url": cloud_url, "enrollment_ca_file": str(ca_file)},
        "system": {"update_command": ["sh", "-c", "echo update ok"],
                   "reboot_command": ["sh", "-c", f"touch {tmp}/rebooted"],
                   "action_delay": 0.1}}))
    return path


async def _expect_error(call: Any, code: str) -> str:
    with pytest.raises(RpcFailed) as info:
        await call
    assert info.value.error.data == {"code": code} or code in json.dumps(info.value.error.data)
    return info.value.error.message


async def test_system_commands_from_the_cloud_match_the_schema(tmp_path: Path) -> None:
    traffic: list[tuple[str, str, str]] = []
    async with refcloud(tmp_path / "cloud") as cloud:
        path = await asyncio.to_thread(_write_config, tmp_path, cloud.url, cloud.ca_file)
        holder: list[ClgwdConfig] = [await asyncio.to_thread(load_config, path)]
        restarts: list[str] = []

        async def reload() -> dict[str, Any]:
            holder[0] = await asyncio.to_thread(load_config, path)
            return {"applied": True, "errors": []}

        await enroll_gateway(holder[0], cloud)
        cloud.tap = lambda d, t: traffic.append(("cloud", d, t)) if d == "out" else None
        async with running_gateway(holder[0]) as gw:
            hooks = DaemonHooks(lambda: holder[0], path, reload, restarts.append)
            async with SystemComponent(gw.store, gw.commands, hooks) as system:
                gw.link.tap = lambda d, t: traffic.append(("gateway", d, t)) \
                    if d == "out" else None
                await gw.online()
                gid = gw.link.gateway_id or ""

                async def cmd(method: str, params: dict[str, Any]) -> Any:
                    return await cloud.command(gid, method, params)

                view = (await cmd("config.get", {}))["config"]
                assert view["cloud"]["url"] == cloud.url and "system" in view
                assert (await cmd("logs.collect", {"since_hours": 2}))["source"] == "memory"
                schedule = {"frequency": "weekly", "weekdays": ["mon"], "time": "02:30",
                            "timezone": "Europe/Paris"}
                assert (await cmd("update.schedule", schedule))["time"] == "02:30"
                message = await _expect_error(
                    cmd("update.schedule", {**schedule, "timezone": "Europe/Nowhere"}),
                    "invalid_params")
                assert "timezone: unknown time zone" in message
                assert (await cmd("update.apply", {}))["state"] == "started"
                await wait_for(lambda: system.tracker.current.message == "idle")
                await _expect_error(cmd("config.set", {"patch": {"system": {
                    "update_command": ["id"]}}}), "forbidden_key")
                answer = await cmd("config.set", {"patch": {"sync": {"interval_minutes": 35}}})
                assert answer == {"applied": True, "changed": ["sync.interval_minutes"]}
                assert holder[0].sync.interval_minutes == 35
                assert (await cmd("system.reboot", {}))["state"] == "rebooting"
                await wait_for((tmp_path / "rebooted").exists)
                await _expect_error(cmd("system.factory_reset", {"confirm": "revert"}), "busy")
    seen = _validate_traffic(_schema(), traffic)
    assert seen >= SYSTEM_METHODS


def test_schema_requires_the_factory_reset_confirmation() -> None:
    """A cloud that forgets ``confirm: revert`` sends an invalid message (the gateway
    refuses it too: tests/system/test_actions.py)."""
    schema = _schema()
    spec = {**schema["$defs"]["methods"]["system.factory_reset"]["params"],
            "$defs": schema["$defs"]}
    jsonschema.Draft202012Validator(spec).validate({"confirm": "revert",
                                                    "idempotency_key": "k-1"})
    for bad in ({"idempotency_key": "k-1"}, {"confirm": "yes", "idempotency_key": "k-1"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.Draft202012Validator(spec).validate(bad)
