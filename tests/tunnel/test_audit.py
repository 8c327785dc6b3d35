"""The tunnel audit log: hash chain, append-only, upstream copy, fail closed."""

from __future__ import annotations

import asyncio
import sqlite3

import aiosqlite
import pytest

from clgwd.commands import CommandContext
from clgwd.protocol.streams import StreamRefused
from clgwd.protocol.wire import OpenRequest
from clgwd.store import Store
from clgwd.tunnel.audit import AuditChainBroken, AuditLog

from .conftest import HarnessFactory


async def test_chain_verifies_and_goes_upstream(harness: HarnessFactory) -> None:
    """Every record is chained to the previous one and queued in the outbox as ``audit``."""
    h = await harness()
    await h.start()
    await h.router.call("tunnel.stop", {"name": "echo"}, CommandContext("local:cli"))
    log = h.component.audit
    assert await log.verify() == 2
    records = await log.records()
    assert records[1].prev_hash == records[0].hash
    pending = await h.store.outbox.pending()
    audit = [p for p in pending if p.kind == "audit"]
    assert [a.payload["type"] for a in audit] == ["tunnel_start", "tunnel_stop"]
    assert audit[1].payload["hash"] == records[1].hash


async def test_append_only_and_tamper_evident(harness: HarnessFactory) -> None:
    """Updates and deletes are refused; a forged row breaks verification."""
    h = await harness()
    await h.start()
    await h.start()
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        async with h.store.db.transaction() as tx:
            await tx.execute("UPDATE tunnel_audit SET type = 'x' WHERE seq = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        async with h.store.db.transaction() as tx:
            await tx.execute("DELETE FROM tunnel_audit WHERE seq = 1")
    async with aiosqlite.connect(h.store.db.path) as raw:  # an attacker with file access
        await raw.execute("DROP TRIGGER tunnel_audit_no_update")
        await raw.execute("UPDATE tunnel_audit SET record = '{\"actor\":\"nobody\"}' "
                          "WHERE seq = 1")
        await raw.commit()
    with pytest.raises(AuditChainBroken, match="seq 1"):
        await h.component.audit.verify()


async def test_concurrent_appends_are_batched_in_order(harness: HarnessFactory) -> None:
    h = await harness()
    log: AuditLog = h.component.audit
    seqs = await asyncio.gather(*(log.append("test", {"i": i}) for i in range(50)))
    assert sorted(seqs) == seqs == list(range(1, 51))
    assert await log.verify() == 50


async def test_full_outbox_refuses_streams(harness: HarnessFactory) -> None:
    """Fail closed: if the open cannot be audited, the stream is refused."""
    h = await harness()
    await h.start()
    store: Store = h.store
    store.outbox.max_records = await store.outbox.depth()
    with pytest.raises(StreamRefused) as err:
        await h.open_raw(OpenRequest("echo", "127.0.0.1", h.echo.port, h.ticket(), 65536))
    assert "audit" in err.value.reason
    assert await h.audit("stream_open") == []
