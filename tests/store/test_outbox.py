"""The outbox: same-transaction writes, order, idempotency, coalescing, bounds."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from clgwd.config import parse_config
from clgwd.store import Action, Event, OutboxFullError, Store
from clgwd.store.outbox import MAX_RECORD_BYTES, RecordTooLarge


def _store(state_dir: Path, max_records: int = 200_000) -> Store:
    return Store(parse_config(f"state: {{dir: {state_dir}, outbox_max_records: {max_records}}}"))


async def test_records_are_delivered_in_seq_order_and_acked(state_dir: Path) -> None:
    async with _store(state_dir) as store:
        async with store.db.transaction() as tx:
            seqs = [await store.outbox.enqueue(tx, "event", {"n": i}) for i in range(5)]
        assert seqs == sorted(seqs)
        pending = await store.outbox.pending()
        assert [r.payload["n"] for r in pending] == [0, 1, 2, 3, 4]
        assert await store.outbox.ack(seqs[2]) == 3
        assert await store.outbox.acked_seq() == seqs[2]
        assert [r.seq for r in await store.outbox.pending()] == seqs[3:]
        assert [r.seq for r in await store.outbox.pending(after_seq=seqs[3])] == seqs[4:]


async def test_record_is_written_with_the_state_change_or_not_at_all(state_dir: Path) -> None:
    """A failure after the state change rolls back both."""
    async with _store(state_dir) as store:
        with pytest.raises(RuntimeError):
            async with store.db.transaction() as tx:
                await store.history.record(tx, Event(actor="t", action=Action.CREATE,
                                                     asset="PBX User Profile"))
                raise RuntimeError("crash before commit")
        assert await store.outbox.depth() == 0
        assert await store.db.fetchall("SELECT * FROM events") == []


async def test_repeated_idempotency_key_returns_first_seq(state_dir: Path) -> None:
    async with _store(state_dir) as store:
        async with store.db.transaction() as tx:
            first = await store.outbox.enqueue(tx, "event", {"a": 1}, idempotency_key="k1")
            again = await store.outbox.enqueue(tx, "event", {"a": 2}, idempotency_key="k1")
        assert first == again
        assert await store.outbox.depth() == 1
        await store.outbox.ack(first)
        async with store.db.transaction() as tx:
            after_ack = await store.outbox.enqueue(tx, "event", {"a": 3}, idempotency_key="k1")
        assert after_ack == first
        assert await store.outbox.depth() == 0


async def test_coalesced_records_keep_only_the_newest(state_dir: Path) -> None:
    async with _store(state_dir) as store:
        for n in range(3):
            async with store.db.transaction() as tx:
                await store.outbox.enqueue(tx, "status", {"n": n}, coalesce_key="status")
                await store.outbox.enqueue(tx, "event", {"n": n})
        kinds = [(r.kind, r.payload["n"]) for r in await store.outbox.pending()]
        assert kinds == [("event", 0), ("event", 1), ("status", 2), ("event", 2)]


async def test_full_outbox_refuses_changes_instead_of_dropping(state_dir: Path) -> None:
    async with _store(state_dir, max_records=100) as store:
        async with store.db.transaction() as tx:
            for n in range(100):
                await store.outbox.enqueue(tx, "event", {"n": n})
        assert await store.outbox.is_near_full()
        with pytest.raises(OutboxFullError, match="limit 100"):
            async with store.db.transaction() as tx:
                await store.history.record(tx, Event(actor="t", action=Action.EDIT, asset="x"))
        assert await store.db.fetchall("SELECT * FROM events") == []
        assert await store.outbox.depth() == 100


async def test_waiters_wake_only_after_commit(state_dir: Path) -> None:
    async with _store(state_dir) as store:
        waiter = asyncio.ensure_future(store.outbox.wait_for_records())
        async with store.db.transaction() as tx:
            await store.outbox.enqueue(tx, "event", {})
            await asyncio.sleep(0.05)
            assert not waiter.done()
        await asyncio.wait_for(waiter, 1)


async def test_records_survive_reopen(state_dir: Path) -> None:
    async with _store(state_dir) as store, store.db.transaction() as tx:
        await store.outbox.enqueue(tx, "event", {"kept": True})
    async with _store(state_dir) as store:
        (record,) = await store.outbox.pending()
        assert record.payload == {"kept": True}


async def test_enqueue_many_skips_known_keys_and_respects_the_limit(state_dir: Path) -> None:
    async with _store(state_dir, max_records=100) as store:
        async with store.db.transaction() as tx:
            await store.outbox.enqueue_many(tx, "user.change",
                                            [(f"k{n}", {"n": n}) for n in range(60)])
        async with store.db.transaction() as tx:
            await store.outbox.enqueue_many(tx, "user.change",
                                            [(f"k{n}", {"n": n}) for n in range(50, 70)])
        pending = await store.outbox.pending(limit=1000)
        assert [r.payload["n"] for r in pending] == list(range(70))
        with pytest.raises(OutboxFullError):
            async with store.db.transaction() as tx:
                await store.outbox.enqueue_many(tx, "user.change",
                                                [(f"x{n}", {}) for n in range(31)])
        assert await store.outbox.depth() == 70


async def test_cached_depth_follows_acks_and_coalescing(state_dir: Path) -> None:
    """The cached count never lets the queue exceed its limit, whatever happened before."""
    async with _store(state_dir, max_records=100) as store:
        async with store.db.transaction() as tx:
            for n in range(100):
                await store.outbox.enqueue(tx, "status", {"n": n}, coalesce_key=f"c{n % 10}")
        assert await store.outbox.depth() == 10
        async with store.db.transaction() as tx:
            for n in range(90):
                await store.outbox.enqueue(tx, "event", {"n": n})
        with pytest.raises(OutboxFullError):
            async with store.db.transaction() as tx:
                await store.outbox.enqueue(tx, "event", {})
        pending = await store.outbox.pending(limit=1000)
        await store.outbox.ack(pending[49].seq)
        async with store.db.transaction() as tx:
            for n in range(50):
                await store.outbox.enqueue(tx, "event", {"again": n})
        assert await store.outbox.depth() == 100


async def test_pending_stops_at_the_byte_budget_but_returns_at_least_one(
        state_dir: Path) -> None:
    """A push must fit the cloud's message limit however large the records are."""
    async with _store(state_dir) as store:
        async with store.db.transaction() as tx:
            for i in range(10):
                await store.outbox.enqueue(tx, "event", {"i": i, "pad": "é" * 10_000})
        batch = await store.outbox.pending(0, 500, max_bytes=50_000)
        # Each payload is ~20 KB of UTF-8 (é is two bytes): two fit in 50,000 bytes.
        assert [r.payload["i"] for r in batch] == [0, 1]
        (one,) = await store.outbox.pending(0, 500, max_bytes=10)
        assert one.payload["i"] == 0
        assert len(await store.outbox.pending(0, 500)) == 10


async def test_a_record_too_large_to_deliver_is_refused(state_dir: Path) -> None:
    async with _store(state_dir) as store:
        with pytest.raises(RecordTooLarge, match="outbox record"):
            async with store.db.transaction() as tx:
                await store.outbox.enqueue(tx, "inventory", {"pad": "x" * MAX_RECORD_BYTES})
        with pytest.raises(RecordTooLarge):
            async with store.db.transaction() as tx:  # 4-byte characters count as bytes
                await store.outbox.enqueue_many(
                    tx, "event", [("k", '"' + "\U0001f600" * (MAX_RECORD_BYTES // 4) + '"')])
        assert await store.outbox.depth() == 0
