"""Bulk history events go upstream as event.batch records: bounded, ordered, no repeats."""

from __future__ import annotations

import json

from clgwd.store.history import EVENT_BATCH_BYTES, EVENTS_PER_BATCH, batch_events


def _event(i: int, pad: int = 0) -> tuple[str, str]:
    return f"event:e{i:05d}", json.dumps({"id": f"e{i:05d}", "pad": "x" * pad})


def _ids(batches: list[tuple[str, str]]) -> list[list[str]]:
    return [[e["id"] for e in json.loads(payload)["events"]] for _, payload in batches]


def test_batches_keep_order_and_cap_the_count() -> None:
    batches = batch_events([_event(i) for i in range(EVENTS_PER_BATCH * 2 + 1)])
    ids = _ids(batches)
    assert [len(b) for b in ids] == [EVENTS_PER_BATCH, EVENTS_PER_BATCH, 1]
    assert [i for batch in ids for i in batch] == [
        f"e{i:05d}" for i in range(EVENTS_PER_BATCH * 2 + 1)]
    assert [key for key, _ in batches] == [
        "event.batch:e00000", f"event.batch:e{EVENTS_PER_BATCH:05d}",
        f"event.batch:e{EVENTS_PER_BATCH * 2:05d}"]


def test_batches_cap_the_bytes_and_a_large_event_travels_alone() -> None:
    big = EVENT_BATCH_BYTES // 3
    batches = batch_events([_event(0, big), _event(1, big), _event(2, big),
                            _event(3, EVENT_BATCH_BYTES * 2), _event(4)])
    assert _ids(batches) == [["e00000", "e00001"], ["e00002"], ["e00003"], ["e00004"]]
    assert all(len(p) <= EVENT_BATCH_BYTES + 100 for _, p in batches[:2])


def test_a_repeated_event_is_sent_once_and_dicts_are_serialized() -> None:
    batches = batch_events([_event(0), _event(0), ("event:d", {"id": "d", "n": "é"})])
    assert _ids(batches) == [["e00000", "d"]]
    assert "é" in batches[0][1]
    assert batch_events([]) == []
