"""Call traces from the cloud: ``sip.trace.allow_cloud`` and ``trace.fetch``."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator, Callable

import pytest

from clgwd.commands import CallerRefused, CommandContext, CommandRouter
from clgwd.config import ClgwdConfig
from clgwd.sip.trace import FETCH_CHUNK, CallTrace, TraceTooLarge, trace_dir
from clgwd.store import EventFilter, Store

CLOUD = CommandContext(actor="cloud")
CLI = CommandContext(actor="local:cli")
NAME = "trace-20261207T180000123Z-lo.pcap"


@contextlib.asynccontextmanager
async def tracer(config: ClgwdConfig, data: bytes = b""
                 ) -> AsyncIterator[tuple[CommandRouter, Store]]:
    router = CommandRouter()
    async with Store(config) as store, CallTrace(config, store, router):
        if data:
            (trace_dir(config) / NAME).write_bytes(data)
        yield router, store


async def test_cloud_fetches_a_capture_in_chunks_and_it_is_audited(
        make_config: Callable[..., ClgwdConfig]) -> None:
    """A 600 KB capture arrives in 256 KiB chunks; the last carries the file's SHA-256;
    the fetch is one history event."""
    data = os.urandom(600_000)
    async with tracer(make_config(), data) as (router, store):
        got, offset = b"", 0
        while True:
            part = await router.call("trace.fetch", {"file": NAME, "offset": offset}, CLOUD)
            chunk = base64.b64decode(part["data"])
            assert len(chunk) <= FETCH_CHUNK and part["size"] == len(data)
            got += chunk
            offset += len(chunk)
            if part["eof"]:
                break
            assert part["sha256"] is None
        assert got == data and part["sha256"] == hashlib.sha256(data).hexdigest()
        events = await store.history.query(EventFilter(asset="Call trace"))
        assert [(e.actor, e.subject) for e in events] == [("cloud", f"fetched {NAME}")]


async def test_fetch_refuses_files_above_the_cap_and_bad_names(
        make_config: Callable[..., ClgwdConfig]) -> None:
    """Above sip.trace.fetch_max_mb: 413 naming the key; a path instead of a name: 404."""
    config = make_config("sip: {trace: {fetch_max_mb: 1}}\n")
    async with tracer(config, b"x" * (1024 * 1024 + 1)) as (router, _):
        with pytest.raises(TraceTooLarge, match="sip.trace.fetch_max_mb"):
            await router.call("trace.fetch", {"file": NAME}, CLOUD)
        with pytest.raises(Exception, match="not a call trace file name"):
            await router.call("trace.fetch", {"file": "../state.db"}, CLOUD)


@pytest.mark.parametrize("method", ["trace.calls", "trace.stop", "trace.fetch"])
async def test_allow_cloud_false_refuses_the_cloud_only(
        make_config: Callable[..., ClgwdConfig], method: str) -> None:
    """With sip.trace.allow_cloud false the cloud gets local_only; the CLI does not."""
    config = make_config("sip: {trace: {allow_cloud: false}}\n")
    async with tracer(config, b"abc") as (router, _):
        with pytest.raises(CallerRefused, match="sip.trace.allow_cloud is false"):
            await router.call(method, {}, CLOUD)
        if method == "trace.fetch":
            part = await router.call(method, {"file": NAME}, CLI)
            assert base64.b64decode(part["data"]) == b"abc"


async def test_cloud_may_stop_a_trace_by_default(make_config: Callable[..., ClgwdConfig]
                                                 ) -> None:
    """allow_cloud defaults to true: the cloud's trace.stop runs (nothing to stop)."""
    async with tracer(make_config()) as (router, _):
        assert (await router.call("trace.stop", {}, CLOUD))["stopped"] is False
