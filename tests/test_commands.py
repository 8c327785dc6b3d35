"""The command router's per-caller rule: local-only methods are refused to the cloud."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from clgwd.commands import (
    CLOUD_REFUSED,
    LOCAL_METHODS,
    PROTOCOL_METHODS,
    CallerRefused,
    CommandContext,
    CommandRouter,
)

CLOUD = CommandContext(actor="cloud")
LAN_CALLERS = (CommandContext(actor="local:web:admin"), CommandContext(actor="local:cli"))


def _router(calls: list[str]) -> CommandRouter:
    router = CommandRouter()

    async def handler(params: Mapping[str, Any], ctx: CommandContext) -> Any:
        calls.append(ctx.actor)
        return {"ok": True}

    for method in (*PROTOCOL_METHODS, *LOCAL_METHODS):
        router.register(method, handler, mutating=True)
    return router


@pytest.mark.parametrize("method", sorted(CLOUD_REFUSED))
async def test_local_only_method_is_refused_to_the_cloud_and_never_runs(method: str) -> None:
    """The cloud gets a 403-style local_only error naming the method and why."""
    calls: list[str] = []
    with pytest.raises(CallerRefused, match=rf"{method} may only be called from the "
                                            r"gateway's LAN") as info:
        await _router(calls).call(method, {}, CLOUD)
    assert info.value.code == "local_only" and info.value.http_status == 403
    assert calls == []


@pytest.mark.parametrize("method", sorted(CLOUD_REFUSED))
async def test_local_only_method_runs_for_the_page_and_the_cli(method: str) -> None:
    calls: list[str] = []
    router = _router(calls)
    for ctx in LAN_CALLERS:
        assert await router.call(method, {}, ctx) == {"ok": True}
    assert calls == ["local:web:admin", "local:cli"]


async def test_every_other_known_method_stays_callable_by_the_cloud() -> None:
    """The rule is a short, explicit list: protocol methods are never refused."""
    calls: list[str] = []
    router = _router(calls)
    allowed = [m for m in (*PROTOCOL_METHODS, *LOCAL_METHODS) if m not in CLOUD_REFUSED]
    for method in allowed:
        await router.call(method, {}, CLOUD)
    assert calls == ["cloud"] * len(allowed)
    assert not set(CLOUD_REFUSED) & set(PROTOCOL_METHODS)
    assert set(CLOUD_REFUSED) <= set(LOCAL_METHODS)


async def test_refusal_comes_before_not_supported_yet() -> None:
    """An unimplemented local-only method still says local_only to the cloud."""
    with pytest.raises(CallerRefused):
        await CommandRouter().call("pbx.set", {}, CLOUD)
