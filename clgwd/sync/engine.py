"""One sync run: read, apply the rules, diff, and persist everything in one transaction.

The snapshot update, the ``user.change`` outbox records, the history events, the run log
and the ``sync.result`` record are written in a single ``BEGIN IMMEDIATE`` transaction,
so a crash leaves either the old state and nothing queued, or the new state and every
record queued. A re-run after a crash therefore recomputes the same diff (nothing was
committed) or finds nothing to do (everything was). Idempotency keys are
``user.change:<source>:<key>:<revision>`` where the revision only ever grows per key
(deleted users stay as tombstones), so no key is reused for a different change.

CPU-heavy pure steps (rules, serialization, diff, record building) run in a worker
thread: 50,000 users take about a second of CPU that must not stall the event loop.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TypeVar

from clgwd.config.pbx import SyncConfig
from clgwd.errors import ClgwdError
from clgwd.pbx.model import (
    ConnectorNotAvailable,
    SourceAuthError,
    SourceRead,
    SourceTimeout,
    UserSource,
)
from clgwd.store import Event, Severity, Store, Transaction
from clgwd.sync import missing
from clgwd.sync.diff import (
    Candidate,
    Change,
    Op,
    Plan,
    SnapshotRow,
    changed_fields,
    missing_set_id,
    plan_changes,
    prepare,
)
from clgwd.sync.missing import ALERT_SAFETY, DeleteConfirmation
from clgwd.sync.progress import Phase, SyncProgress
from clgwd.sync.records import (
    Records,
    RunContext,
    build_records,
    write_absences,
    write_records,
)
from clgwd.sync.rules import RuleResult, apply_rules

_LOGGER = logging.getLogger(__name__)

PREVIEW_LIMIT: Final = 500
_CHUNK: Final = 500
_APPLY_CHUNK: Final = 2000
_SNAPSHOT_PAGE: Final = 5000

ALERT_EMPTY: Final = "sync.empty_read"
ALERT_IRREGULAR: Final = "sync.irregularities"
READ_ALERTS: Final = ("pbx.unreachable", "pbx.auth_failed", "pbx.bad_data",
                      "pbx.connector_unavailable", ALERT_EMPTY, "sync.apply_failed")

Result = Literal["ok", "aborted", "failed", "preview"]
_T = TypeVar("_T")


class EmptyReadError(ClgwdError):
    code = "pbx_empty_read"
    http_status = 502


@dataclass
class SyncOutcome:
    """The result of one run, as kept in the run log and shown to the operator."""

    run_id: str
    source_id: str
    trigger: str
    actor: str
    started_at: float
    result: Result = "ok"
    duration: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds per phase (read, snapshot, analyse, build, write, commit), for tuning."""
    dids: int = 0
    irregularities: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    error_code: str = ""
    changes: list[dict[str, Any]] = field(default_factory=list)
    """Preview only: the changes that would be queued (capped at ``PREVIEW_LIMIT``)."""
    safety_abort: dict[str, Any] | None = None
    """Set when the safety rule stops (or, in a preview, would stop) the run:
    ``{"set_id", "count", "active", "reason"}``, the users held back."""

    def summary(self) -> dict[str, Any]:
        """The ``sync.result`` payload and run-log summary (no per-user lists)."""
        irr = {k: v for k, v in self.irregularities.items()
               if not isinstance(v, list | dict)}
        return {"run_id": self.run_id, "source_id": self.source_id, "result": self.result,
                "trigger": self.trigger, "actor": self.actor, "started_at": self.started_at,
                "duration": round(self.duration, 3), "counts": self.counts, "dids": self.dids,
                "timings": {k: round(v, 3) for k, v in self.timings.items()},
                "irregularities": irr, "error": self.error, "error_code": self.error_code,
                "safety_abort": self.safety_abort}

    def as_json(self) -> dict[str, Any]:
        data = self.summary()
        data["irregularities"] = self.irregularities
        if self.result == "preview":
            data["changes"] = self.changes
        return data


@dataclass
class _Analysis:
    read: SourceRead
    rules: RuleResult
    candidates: dict[str, Candidate]
    plan: Plan


class SyncEngine:
    """Runs sync passes of one source against the state database."""

    def __init__(self, store: Store, source: UserSource, source_id: str,
                 rules: SyncConfig, read_timeout: float, *,
                 executor: Executor | None = None) -> None:
        self.store = store
        self.source = source
        self.source_id = source_id
        self.rules = rules
        self.read_timeout = read_timeout
        self.executor = executor
        """Where CPU-heavy steps run; the component passes one named single thread so a
        sync's allocations stay in one malloc arena (None: the loop's default executor)."""

    async def _offload(self, func: Callable[..., _T], *args: Any) -> _T:
        return await self._submit(func, *args)

    def _submit(self, func: Callable[..., _T], *args: Any) -> asyncio.Future[_T]:
        """Start ``func`` on the sync thread (default executor when none was given)."""
        return asyncio.get_running_loop().run_in_executor(self.executor, func, *args)

    async def run(self, *, actor: str, trigger: str, preview: bool = False,
                  confirm: DeleteConfirmation | None = None,
                  progress: SyncProgress | None = None) -> SyncOutcome:
        """One pass. Never raises for source problems: they become a failed outcome.

        With ``confirm`` ("Delete them once") the read must find exactly the confirmed
        set missing; those users are deleted now and the safety rules are not checked.
        Any other set raises ``StaleSet`` (or ``WrongCount``) and nothing is written."""
        if progress is None:
            progress = SyncProgress(uuid.uuid4().hex, trigger, actor)
        with cyclic_gc_paused():
            return await self._run(actor=actor, trigger=trigger, preview=preview,
                                   confirm=confirm, progress=progress)

    async def _run(self, *, actor: str, trigger: str, preview: bool,
                   confirm: DeleteConfirmation | None,
                   progress: SyncProgress) -> SyncOutcome:
        out = SyncOutcome(progress.run_id, self.source_id, trigger, actor, time.time())
        start = time.monotonic()
        try:
            analysis = await self._analyse(out.timings, progress, delete_missing=confirm
                                           is not None)
            self._fill(out, analysis)
            progress.counts.update(out.counts)
            plan = analysis.plan
            if confirm is not None:
                await self._check_confirmation(out, plan, confirm)
            if plan.abort_reason:
                out.error, out.error_code = plan.abort_reason, "sync_safety_abort"
                out.safety_abort = {
                    "set_id": missing_set_id(self.source_id, plan.missing_keys),
                    "count": len(plan.missing_keys), "active": plan.active_before,
                    "reason": plan.abort_reason}
            if preview:
                out.result = "preview"
                out.changes = await self._preview_changes(plan)
            elif plan.abort_reason:
                out.result = "aborted"
                out.duration = time.monotonic() - start
                await self._record_abort(out, plan)
            else:
                audit = None if confirm is None else missing.confirmation_event(
                    actor, self.source_id, confirm.set_id, plan.missing_keys)
                await self._apply(out, analysis, start, progress, audit)
        except (missing.StaleSet, missing.WrongCount):
            raise  # the technician's confirmation was refused: not a sync failure
        except ClgwdError as err:
            # Source failures, an empty read, a full outbox: nothing was applied.
            out.result, out.error, out.error_code = "failed", err.message, err.code
            out.duration = time.monotonic() - start
            if not preview:
                await self._record_failure(out, err)
            return out
        out.duration = time.monotonic() - start
        return out

    # -- read and analyse ---------------------------------------------------------------

    async def _check_confirmation(self, out: SyncOutcome, plan: Plan,
                                  confirm: DeleteConfirmation) -> None:
        found = missing_set_id(self.source_id, plan.missing_keys)
        if found != confirm.set_id:
            # What is held back now is what this read found: the abort it would hit
            # replaces the stale set (the page then shows the new list), or nothing is
            # held back any more.
            if plan.would_abort:
                out.result, out.error = "aborted", plan.would_abort
                out.error_code = "sync_safety_abort"
                await self._record_abort(out, plan)
            else:
                async with self.store.db.transaction() as tx:
                    await missing.clear(tx, self.source_id)
            raise missing.StaleSet(
                f"the PBX read now finds {len(plan.missing_keys)} synced users missing, not "
                "the set that was confirmed; nothing was deleted. Review the new list and "
                "confirm again")
        if confirm.count != len(plan.missing_keys):
            raise missing.WrongCount(
                f"confirm: type {len(plan.missing_keys)}, the number of users to delete "
                f"(got {confirm.count}); nothing was deleted")

    async def _analyse(self, timings: dict[str, float], progress: SyncProgress | None = None,
                       *, delete_missing: bool = False) -> _Analysis:
        if progress is None:
            progress = SyncProgress("", "", "")
        progress.enter(Phase.READING)
        progress.read_progress = getattr(self.source, "read_progress", None)
        mark = time.monotonic()
        # The snapshot loads (database thread) while the source is read (its own
        # thread or socket); a failed read cancels the load with the task group.
        try:
            async with asyncio.TaskGroup() as group:
                loading = group.create_task(self._load_snapshot(),
                                            name="clgwd[sync].snapshot")
                read = await self._read()
                timings["read"] = time.monotonic() - mark
        except BaseExceptionGroup as errors:
            # Callers handle the read's own error (SourceError ...), not a group of one.
            raise errors.exceptions[0] from None
        snapshot = loading.result()
        progress.read_progress = None
        progress.counts["read"] = len(read.users)
        progress.enter(Phase.COMPARING)
        timings["snapshot"], mark = time.monotonic() - mark, time.monotonic()
        analysis = await self._offload(self._analyse_blocking, read, snapshot,
                                       delete_missing)
        timings["analyse"] = time.monotonic() - mark
        return analysis

    async def _read(self) -> SourceRead:
        try:
            async with asyncio.timeout(self.read_timeout):
                read = await self.source.read_users()
        except TimeoutError:
            raise SourceTimeout(f"{self.source.describe()}: read took longer than "
                                f"{self.read_timeout:g} s") from None
        if not read.users and not self.rules.allow_empty_read:
            raise EmptyReadError(
                f"{self.source.describe()} returned 0 users; treated as an error so nobody "
                "is deleted (set sync.allow_empty_read to accept an empty PBX)")
        return read

    def _analyse_blocking(self, read: SourceRead, snapshot: Mapping[str, SnapshotRow],
                          delete_missing: bool = False) -> _Analysis:
        rules = apply_rules(read.users, read.problems, self.rules.client_username,
                            email_problems=self.rules.email_problems)
        flags = rules.flags
        candidates = {u.source_key: prepare(u, flags.get(u.source_key, "") if flags else "")
                      for u in rules.eligible}
        plan = plan_changes(candidates, rules.present_keys, snapshot,
                            complete=not read.problems, rules=self.rules,
                            delete_missing=delete_missing)
        return _Analysis(read, rules, candidates, plan)

    async def _load_snapshot(self) -> dict[str, SnapshotRow]:
        """The last synced state, read in key-ordered pages: a single fetchall of 50,000
        rows would briefly hold every ``sqlite3.Row`` next to the finished dict."""
        out: dict[str, SnapshotRow] = {}
        after = ""
        while True:
            rows = await self.store.db.fetchall(
                "SELECT source_key, fingerprint, email_key, revision, absent_reads, deleted"
                " FROM sync_snapshot WHERE source_id = ? AND source_key > ?"
                " ORDER BY source_key LIMIT ?", (self.source_id, after, _SNAPSHOT_PAGE))
            for r in rows:
                out[r[0]] = SnapshotRow(r[1], r[2], r[3], r[4], bool(r[5]))
            if len(rows) < _SNAPSHOT_PAGE:
                return out
            after = rows[-1][0]

    async def _load_users(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Last synced JSON of ``keys`` (for changed-field lists and delete details)."""
        wanted = list(dict.fromkeys(keys))
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(wanted), _CHUNK):
            chunk = wanted[i:i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = await self.store.db.fetchall(
                f"SELECT source_key, user FROM sync_snapshot WHERE source_id = ?"  # noqa: S608
                f" AND source_key IN ({marks})", (self.source_id, *chunk))
            out.update((r[0], json.loads(r[1])) for r in rows)
        return out

    def _fill(self, out: SyncOutcome, analysis: _Analysis) -> None:
        plan, read = analysis.plan, analysis.read
        # One definition of "DIDs" for every front door: the distinct numbers assigned
        # to the users that sync, which is what inventory.report counts once they are
        # synced (a DID of a held-back user is not counted on either side).
        dids = synced_dids(analysis.candidates.values())
        out.dids = len(dids)
        out.irregularities = analysis.rules.irregularities.as_json()
        out.counts = {
            "read": len(read.users), "eligible": len(analysis.candidates),
            "created": plan.count(Op.CREATE), "updated": plan.count(Op.UPDATE),
            "deleted": plan.count(Op.DELETE), "moved": plan.moves,
            "unchanged": len(analysis.candidates) - plan.count(Op.CREATE)
            - plan.count(Op.UPDATE),
            "absent_pending_delete": len(plan.absent), "missing": plan.missing,
            "assigned_dids": len(dids), "row_problems": len(read.problems),
        }
        if read.did_count is not None:
            out.counts["dids_on_pbx"] = read.did_count  # assigned or not, as the PBX says

    async def _preview_changes(self, plan: Plan) -> list[dict[str, Any]]:
        shown = plan.changes[:PREVIEW_LIMIT]
        old = await self._load_users(_old_keys(shown))
        return [_describe_change(c, old) for c in shown]

    # -- persist -------------------------------------------------------------------------

    async def _apply(self, out: SyncOutcome, analysis: _Analysis, start: float,
                     progress: SyncProgress, audit: Event | None = None) -> None:
        """Write every change in one transaction, building records chunk by chunk in a
        worker thread so a 50,000-user first sync never holds all payloads at once."""
        plan, timings = analysis.plan, out.timings
        now = time.time()
        timings["build_wait"] = timings["write"] = 0.0
        context = RunContext(self.source_id, out.actor, now)
        chunks = [plan.changes[i:i + _APPLY_CHUNK]
                  for i in range(0, len(plan.changes), _APPLY_CHUNK)]

        async def build(index: int) -> asyncio.Future[Records]:
            # The previous JSON of updated/deleted users, per chunk: a mass update of
            # 50,000 users never holds 50,000 old user dicts at once. The reader
            # connection sees the last committed state, i.e. the snapshot before this run.
            old = await self._load_users(_old_keys(chunks[index]))
            return self._submit(build_records, chunks[index], old, context,
                                index * _APPLY_CHUNK)

        # Pipelined: chunk i+1 is built on the sync thread while chunk i is written by
        # the database thread. Only SQLite's own C work (GIL released) truly overlaps;
        # measured, it saves little on CPython, but it costs nothing either.
        progress.enter(Phase.SAVING, len(plan.changes))
        upcoming = await build(0) if chunks else None
        async with self.store.db.transaction() as tx:
            try:
                for index in range(len(chunks)):
                    assert upcoming is not None
                    mark = time.monotonic()
                    records = await upcoming
                    timings["build_wait"] += time.monotonic() - mark
                    upcoming = await build(index + 1) if index + 1 < len(chunks) else None
                    mark = time.monotonic()
                    await write_records(tx, self.store, records)
                    timings["write"] += time.monotonic() - mark
                    progress.done = min(len(plan.changes), (index + 1) * _APPLY_CHUNK)
            finally:
                if upcoming is not None:
                    upcoming.cancel()
            await write_absences(tx, self.source_id, plan)
            await missing.clear(tx, self.source_id)  # nothing is held back any more
            if audit is not None:
                await self.store.history.record(tx, audit)
            out.duration = time.monotonic() - start
            await self._log_run(tx, out)
            mark = time.monotonic()
        timings["commit"] = time.monotonic() - mark
        await self._update_alerts(analysis)
        _LOGGER.info("Sync %s: %s", self.source_id, out.counts)

    async def _log_run(self, tx: Transaction, out: SyncOutcome) -> None:
        summary = out.summary()
        await tx.execute(
            "INSERT INTO sync_runs(id, source_id, trigger, actor, started_at, finished_at,"
            " result, summary) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (out.run_id, out.source_id, out.trigger, out.actor, out.started_at,
             out.started_at + out.duration, out.result, json.dumps(summary)))
        await self.store.outbox.enqueue(tx, "sync.result", summary,
                                        idempotency_key=f"sync.result:{out.run_id}")

    async def _record_failure(self, out: SyncOutcome, err: ClgwdError) -> None:
        code = getattr(err, "alert_code", None)
        if isinstance(err, EmptyReadError):
            code = ALERT_EMPTY
        elif isinstance(err, ConnectorNotAvailable):
            code = "pbx.connector_unavailable"
        elif code is None:
            code = "sync.apply_failed"
        severity = Severity.CRITICAL if isinstance(err, SourceAuthError) else Severity.WARNING
        async with self.store.db.transaction() as tx:
            await self._log_run(tx, out)
            await self.store.alerts.raise_in(tx, code, severity, err.message)

    async def _record_abort(self, out: SyncOutcome, plan: Plan) -> None:
        async with self.store.db.transaction() as tx:
            await self._log_run(tx, out)
            await missing.store_abort(tx, self.source_id, plan, out.error, out.run_id)
            await self.store.alerts.raise_in(tx, ALERT_SAFETY, Severity.CRITICAL, out.error)

    async def _update_alerts(self, analysis: _Analysis) -> None:
        """Clear what this success resolves and (re-)raise the irregularities; touches
        only alerts whose state changes (each change is its own transaction)."""
        active = {a.code: a.message for a in await self.store.alerts.active()}
        report = analysis.rules.irregularities
        resolved = [*READ_ALERTS, ALERT_SAFETY] + ([] if report.any else [ALERT_IRREGULAR])
        for code in resolved:
            if code in active:
                await self.store.alerts.clear(code)
        message = f"There are irregularities on the PBX: {report.summary()}"
        if report.any and active.get(ALERT_IRREGULAR) != message:
            await self.store.alerts.raise_alert(ALERT_IRREGULAR, Severity.WARNING, message)


def synced_dids(candidates: Iterable[Candidate]) -> set[str]:
    """The DIDs "DIDs" and "DDI (DID) numbers" count: distinct, of synced users."""
    return {d for c in candidates for d in c.user.dids}


_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_was_enabled = False


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a sync runs.

    A 50,000-user sync allocates millions of objects; each full collection walks all of
    them (none of which form cycles: plain values and dataclasses), about 10 % of a
    sync's CPU. Reference counting still frees everything at once; cycles made by the
    rest of the daemon meanwhile are collected when the sync ends. Nested and
    concurrent pauses (two sources, a preview) are counted; the first restores."""
    global _gc_pauses, _gc_was_enabled  # noqa: PLW0603 - one process-wide switch
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


def _old_keys(changes: Sequence[Change]) -> list[str]:
    keys = []
    for c in changes:
        if c.op != Op.CREATE:
            keys.append(c.previous_key or c.source_key)
    return keys


def _describe_change(change: Change, old: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    before = old.get(change.previous_key or change.source_key)
    after = change.candidate.as_json() if change.candidate else None
    item: dict[str, Any] = {"op": change.op.value, "source_key": change.source_key}
    if change.previous_key:
        item["previous_source_key"] = change.previous_key
    if after is not None:
        item["changed"] = changed_fields(before if change.op != Op.CREATE else None, after)
        item["user"] = after
    else:
        item["user"] = before
    return item
