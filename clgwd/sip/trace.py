"""Trace calls: capture the customer's SIP signalling with tcpdump, for support.

The vendor's "trace calls" button. ``trace.calls`` starts one tcpdump per configured
interface, filtered to the SIP ports (``sip`` config section), for 1-60 minutes; only
one trace runs at a time. tcpdump writes pcap to a pipe and this component writes the
file (mode 0600, whole packets only, stopping at the size cap), so the file's owner,
mode and size are ours and not tcpdump's. A trace ends when its time is up, when it is
stopped (``trace.stop``), at the size cap, when tcpdump exits by itself, or at
shutdown; its metadata is written next to the capture and the oldest captures beyond
``sip.trace.keep`` are deleted.

Captures can hold customer data (numbers, names, SDP): they leave the gateway by an
authenticated download from the onboarding page or, when ``sip.trace.allow_cloud`` is
true (the default, as the vendor's Advanced page traces from the cloud), by
``trace.fetch``: chunks of at most ``FETCH_CHUNK`` bytes over the link, files above
``sip.trace.fetch_max_mb`` refused, every fetch recorded in the history. With
``allow_cloud`` false the cloud may only read the status (``trace.calls``,
``trace.stop`` and ``trace.fetch`` answer ``local_only``). Status and the support
bundle carry metadata only.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Self

from clgwd.commands import CLOUD_ACTOR, CallerRefused, CommandContext, CommandRouter
from clgwd.component import ComponentState, StatusTracker
from clgwd.config import ClgwdConfig
from clgwd.errors import ClgwdError
from clgwd.sip.pcap import PcapCutter, PcapError
from clgwd.store import Action, Event, Store
from clgwd.tasks import TaskScope, wait_at_most

_LOGGER = logging.getLogger(__name__)

TRACE_DIR: Final = "sip-traces"
MAX_MINUTES: Final = 60
SECONDS_PER_MINUTE: Final = 60.0
START_TIMEOUT: Final = 5.0
"""Longest wait for tcpdump's "listening on" line before the start counts as failed."""
STOP_GRACE: Final = 5.0
"""After SIGINT, tcpdump gets this long to flush and exit before SIGKILL."""
CHUNK: Final = 64 * 1024
FETCH_CHUNK: Final = 256 * 1024
"""Largest piece of a capture in one ``trace.fetch`` answer (base64 ~350 KB, well under
the link's 1 MiB message limit)."""
STDERR_LINES: Final = 20
_PCAP_NAME: Final = re.compile(r"trace-(\d{8}T\d{9}Z)-([A-Za-z0-9_.@-]{1,15})\.pcap")
_META_NAME: Final = re.compile(r"trace-(\d{8}T\d{9}Z)\.json")


class InvalidTraceParams(ClgwdError):
    code = "invalid_trace_params"
    http_status = 422


class TraceRunning(ClgwdError):
    code = "trace_running"
    http_status = 409


class TcpdumpMissing(ClgwdError):
    code = "tcpdump_missing"
    http_status = 409


class TraceFailed(ClgwdError):
    code = "trace_failed"
    http_status = 409


class TraceFileUnavailable(ClgwdError):
    code = "trace_file_not_found"
    http_status = 404


class TraceTooLarge(ClgwdError):
    code = "trace_too_large"
    http_status = 413


def trace_dir(config: ClgwdConfig) -> Path:
    """Where captures and their metadata live: ``<state dir>/sip-traces``."""
    return config.state.dir / TRACE_DIR


def duration_param(params: Mapping[str, Any]) -> int:
    """``{"duration_minutes": 1..60}``; the cloud and the CLI get the page's checks."""
    unknown = sorted(str(k) for k in params if k != "duration_minutes")
    if unknown:
        raise InvalidTraceParams(f"unknown parameter(s) {', '.join(unknown)}; expected "
                                 "duration_minutes")
    minutes = params.get("duration_minutes", 10)
    if isinstance(minutes, bool) or not isinstance(minutes, int) or \
            not 1 <= minutes <= MAX_MINUTES:
        raise InvalidTraceParams(f"duration_minutes: must be a whole number of minutes, "
                                 f"1-{MAX_MINUTES}")
    return minutes


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def _capture_id(now: float) -> str:
    """Sortable and unique per millisecond: a stop and a new start in one second differ."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"{int(now * 1000) % 1000:03d}Z"


@dataclass
class _Tcpdump:
    interface: str
    path: Path
    fd: int
    cutter: PcapCutter
    proc: asyncio.subprocess.Process | None = None
    stderr: collections.deque[str] = field(
        default_factory=lambda: collections.deque(maxlen=STDERR_LINES))
    interrupted: bool = False

    def interrupt(self) -> None:
        """SIGINT once (tcpdump flushes and exits). Once only: Popen.send_signal polls
        first, and a poll that reaps the exiting child races asyncio's child watcher."""
        if self.proc is None or self.proc.returncode is not None or self.interrupted:
            return
        self.interrupted = True
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGINT)


@dataclass
class _Capture:
    id: str
    actor: str
    minutes: int
    started_at: float
    ends_at: float
    filter: str
    dumps: list[_Tcpdump] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str = ""
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def end(self, reason: str) -> None:
        """The first reason wins: a size cap reached during a stop stays a stop."""
        if not self.reason:
            self.reason = reason
        self.stop.set()

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "actor": self.actor, "duration_minutes": self.minutes,
                "started_at": self.started_at, "ends_at": self.ends_at,
                "interfaces": [d.interface for d in self.dumps], "filter": self.filter,
                "bytes": sum(d.cutter.written for d in self.dumps),
                "packets": sum(d.cutter.packets for d in self.dumps)}


class CallTrace:
    """Component ``sip``: the call trace and its router commands."""

    name = "sip"

    def __init__(self, config: ClgwdConfig, store: Store,
                 commands: CommandRouter | None = None, *, tcpdump: str = "tcpdump") -> None:
        self._config = config
        self._store = store
        self._tcpdump = tcpdump
        self._dir = trace_dir(config)
        self._capture: _Capture | None = None
        self._lock = asyncio.Lock()
        self.scope = TaskScope(self.name)
        self.tracker = StatusTracker(self.name)
        if commands is not None:
            commands.register("trace.calls", self._cmd_start, mutating=True)
            commands.register("trace.stop", self._cmd_stop, mutating=True)
            commands.register("trace.status", self._cmd_status, mutating=False)
            commands.register("trace.file", self._cmd_file, mutating=False)
            commands.register("trace.fetch", self._cmd_fetch, mutating=False)

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await asyncio.to_thread(self._dir.mkdir, mode=0o700, parents=True, exist_ok=True)
        await asyncio.to_thread(_prune, self._dir, self._config.sip.trace.keep, None)
        await self.scope.__aenter__()
        self._idle()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """A running trace is stopped (its file kept and described), then the tasks end."""
        capture = self._capture
        try:
            if capture is not None:
                capture.end("gateway shutting down")
                await wait_at_most(capture.done.wait(), STOP_GRACE + 2)
        finally:
            await self.scope.__aexit__(*exc_info)
            self.tracker.set(ComponentState.STOPPED)

    async def run(self) -> None:
        """Nothing periodic: a trace's tasks live in ``scope`` while it runs."""

    async def apply_config(self, config: ClgwdConfig) -> None:
        """New ports, interfaces and limits apply to the next trace."""
        self._config = config

    # -- commands ---------------------------------------------------------------------------

    def _check_cloud(self, method: str, ctx: CommandContext) -> None:
        if ctx.actor == CLOUD_ACTOR and not self._config.sip.trace.allow_cloud:
            raise CallerRefused(f"{method} may only be called from the gateway's LAN "
                                "(onboarding page or CLI): sip.trace.allow_cloud is false on "
                                "this gateway")

    async def _cmd_start(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        self._check_cloud("trace.calls", ctx)
        return await self.start(duration_param(params), ctx.actor)

    async def _cmd_fetch(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        self._check_cloud("trace.fetch", ctx)
        unknown = sorted(str(k) for k in params if k not in {"file", "offset"})
        name, offset = params.get("file"), params.get("offset", 0)
        if unknown or not isinstance(name, str):
            raise InvalidTraceParams("trace.fetch takes file (a name from trace.status) and "
                                     "offset" + (f"; unknown: {', '.join(unknown)}"
                                                 if unknown else ""))
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise InvalidTraceParams("offset: must be a whole number of bytes, 0 or more")
        return await self.fetch(name, offset, ctx.actor)

    async def fetch(self, name: str, offset: int, actor: str) -> dict[str, Any]:
        """One chunk of a finished capture: ``{file, offset, size, data (base64), eof,
        sha256 (of the whole file, with the last chunk)}``."""
        limit = self._config.sip.trace.fetch_max_mb
        path = await self._finished_file(name)
        chunk, size, digest = await asyncio.to_thread(_read_chunk, path, offset, limit)
        if offset == 0:
            await self._record(Event(actor=actor, action=Action.OTHER, asset="Call trace",
                                     subject=f"fetched {name}", core={"bytes": size}))
        eof = offset + len(chunk) >= size
        return {"file": name, "offset": offset, "size": size, "eof": eof,
                "data": base64.b64encode(chunk).decode(), "sha256": digest if eof else None}

    async def _cmd_stop(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        self._check_cloud("trace.stop", ctx)
        if params:
            raise InvalidTraceParams("trace.stop takes no parameters")
        return await self.stop(ctx.actor)

    async def _cmd_status(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        return await self.status()

    async def _cmd_file(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        name = params.get("file")
        if set(params) - {"file"} or not isinstance(name, str):
            raise InvalidTraceParams("trace.file takes {\"file\": <name>}, a capture file "
                                     "as listed by trace.status")
        return await self.capture_file(name)

    async def capture_file(self, name: str) -> dict[str, Any]:
        """A finished capture file's path, for a download on site (``trace.file``); the
        file of the running trace is refused (it is still being written)."""
        path = await self._finished_file(name)
        return {"file": name, "path": str(path)}

    async def _finished_file(self, name: str) -> Path:
        """The kept capture file ``name``; the running trace's file is ``TraceRunning``
        (it is still being written), anything else unknown ``TraceFileUnavailable``."""
        capture = self._capture
        if capture is not None and any(d.path.name == name for d in capture.dumps):
            raise TraceRunning(f"file: {name} belongs to the call trace still running; "
                               "stop it first")
        return await asyncio.to_thread(pcap_path, self._dir, name)

    async def start(self, minutes: int, actor: str) -> dict[str, Any]:
        """Start tcpdump on every configured interface; answers once all are listening."""
        async with self._lock:
            running = self._capture
            if running is not None:
                raise TraceRunning(f"a call trace is already running until "
                                   f"{_utc(running.ends_at)} (ends_at {running.ends_at:.0f});"
                                   " stop it first or wait")
            exe = await asyncio.to_thread(shutil.which, self._tcpdump)
            if exe is None:
                raise TcpdumpMissing("tcpdump is not installed on the gateway (Debian package "
                                     "tcpdump); call traces need it")
            capture = await self._launch(exe, minutes, actor)
            self._capture = capture
            self.tracker.set(ComponentState.RUNNING,
                             f"tracing calls until {_utc(capture.ends_at)}", trace=capture.id)
            self.scope.create_task(self._run(capture), name="clgwd[sip].trace")
        _LOGGER.info("Call trace %s started by %s for %d min on %s", capture.id, actor,
                     minutes, ", ".join(d.interface for d in capture.dumps))
        await self._record(Event(actor=actor, action=Action.START, asset="Call trace",
                                 subject=capture.id, core={
                                     "duration_minutes": minutes,
                                     "interfaces": [d.interface for d in capture.dumps]}))
        return await self.status()

    async def stop(self, actor: str) -> dict[str, Any]:
        """End the running trace early (its file is kept); no trace running is no error."""
        capture = self._capture
        if capture is not None:
            capture.end(f"stopped by {actor}")
            async with asyncio.timeout(STOP_GRACE + 2):
                await capture.done.wait()
        return {"stopped": capture is not None, **await self.status()}

    async def status(self) -> dict[str, Any]:
        """Running trace (if any), the kept captures newest first, and the limits."""
        capture = self._capture
        captures = await asyncio.to_thread(_list_captures, self._dir)
        if capture is not None:
            captures = [c for c in captures if c["id"] != capture.id]
        trace = self._config.sip.trace
        return {"running": capture is not None,
                "current": capture.as_json() if capture is not None else None,
                "captures": captures,
                "limits": {"max_file_mb": trace.max_file_mb, "keep": trace.keep,
                           "max_minutes": MAX_MINUTES}}

    # -- the capture ------------------------------------------------------------------------

    async def _launch(self, exe: str, minutes: int, actor: str) -> _Capture:
        now = time.time()
        sip = self._config.sip
        capture = _Capture(id=_capture_id(now), actor=actor, minutes=minutes, started_at=now,
                           ends_at=now + minutes * SECONDS_PER_MINUTE, filter=sip.capture_filter())
        limit = sip.trace.max_file_mb * 1024 * 1024
        try:
            for interface in sip.trace.interfaces:
                path = self._dir / f"trace-{capture.id}-{interface}.pcap"
                fd = await asyncio.to_thread(
                    os.open, path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                dump = _Tcpdump(interface, path, fd, PcapCutter(limit))
                capture.dumps.append(dump)
                dump.proc = await asyncio.create_subprocess_exec(
                    exe, "-i", interface, "-n", "-U", "--immediate-mode", "-w", "-",
                    capture.filter, stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
            for dump in capture.dumps:
                await _listening(dump)
        except BaseException:
            await _terminate(capture.dumps)
            await asyncio.to_thread(_discard, capture.dumps)
            raise
        return capture

    async def _run(self, capture: _Capture) -> None:
        """Pump every tcpdump's pcap into its file until the trace ends, then describe it."""
        try:
            async with asyncio.TaskGroup() as tg:
                for dump in capture.dumps:
                    tg.create_task(_pump(capture, dump), name=f"clgwd[sip].pump-{dump.interface}")
                    tg.create_task(_drain_stderr(dump), name=f"clgwd[sip].err-{dump.interface}")
                tg.create_task(_timer(capture), name="clgwd[sip].timer")
        finally:
            await _terminate(capture.dumps)
            await self._finish(capture)

    async def _finish(self, capture: _Capture) -> None:
        ended = time.time()
        meta = {**capture.as_json(), "ended_at": ended,
                "stop_reason": capture.reason or "duration",
                "tcpdump": [line for d in capture.dumps for line in d.stderr
                            if "packets" in line]}
        try:
            await asyncio.to_thread(_close_and_describe, self._dir, capture, meta,
                                    self._config.sip.trace.keep)
            await self._record(Event(actor=capture.actor, action=Action.STOP,
                                     asset="Call trace", subject=capture.id,
                                     core={"reason": meta["stop_reason"],
                                           "bytes": meta["bytes"],
                                           "packets": meta["packets"]}))
        finally:
            self._capture = None
            capture.done.set()
            self._idle()
        _LOGGER.info("Call trace %s ended (%s): %d packets, %d bytes", capture.id,
                     meta["stop_reason"], meta["packets"], meta["bytes"])

    async def _record(self, event: Event) -> None:
        async with self._store.db.transaction() as tx:
            await self._store.history.record(tx, event)

    def _idle(self) -> None:
        self.tracker.set(ComponentState.RUNNING, "idle: no call trace running")


async def _listening(dump: _Tcpdump) -> None:
    """Wait for tcpdump's "listening on" (stderr): only then is the capture really on."""
    assert dump.proc is not None and dump.proc.stderr is not None
    try:
        async with asyncio.timeout(START_TIMEOUT):
            while line := await dump.proc.stderr.readline():
                text = line.decode(errors="replace").strip()
                dump.stderr.append(text)
                if "listening on" in text:
                    return
    except TimeoutError:
        raise TraceFailed(f"tcpdump on {dump.interface} did not start capturing within "
                          f"{START_TIMEOUT:.0f} s") from None
    detail = dump.stderr[-1] if dump.stderr else "no message"
    raise TraceFailed(f"tcpdump on {dump.interface} could not capture: {detail}")


async def _pump(capture: _Capture, dump: _Tcpdump) -> None:
    """Copy whole pcap records to the file until EOF; at the cap, end the trace."""
    assert dump.proc is not None and dump.proc.stdout is not None
    while chunk := await dump.proc.stdout.read(CHUNK):
        try:
            data = dump.cutter.feed(chunk)
        except PcapError as err:
            capture.end(f"tcpdump on {dump.interface} wrote no valid pcap: {err}")
            continue
        if data:
            await asyncio.to_thread(_write_all, dump.fd, data)
        if dump.cutter.full:
            capture.end(f"size limit of {dump.cutter.limit // (1024 * 1024)} MiB reached "
                        f"on {dump.interface}")
    if not capture.stop.is_set():
        detail = dump.stderr[-1] if dump.stderr else "no message"
        capture.end(f"tcpdump on {dump.interface} exited: {detail}")


async def _drain_stderr(dump: _Tcpdump) -> None:
    """Keep reading tcpdump's messages (a full pipe would stall it); the last few are
    kept for the stop reason and the "N packets captured" summary."""
    assert dump.proc is not None and dump.proc.stderr is not None
    while line := await dump.proc.stderr.readline():
        dump.stderr.append(line.decode(errors="replace").strip())


async def _timer(capture: _Capture) -> None:
    """End at ``ends_at`` unless something ended the trace before; then stop tcpdump."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(0.0, capture.ends_at - time.time())):
            await capture.stop.wait()
    capture.end("duration")
    for dump in capture.dumps:
        dump.interrupt()


async def _terminate(dumps: list[_Tcpdump]) -> None:
    """Every tcpdump gone: SIGINT was sent by the timer; SIGKILL after the grace time."""
    for dump in dumps:
        proc = dump.proc
        if proc is None or proc.returncode is not None:
            continue
        dump.interrupt()
        try:
            async with asyncio.timeout(STOP_GRACE):
                await proc.wait()
        except TimeoutError:
            _LOGGER.warning("tcpdump on %s ignored SIGINT; killing it", dump.interface)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


# -- blocking file work (always in a thread) -------------------------------------------------


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _discard(dumps: list[_Tcpdump]) -> None:
    """A start that failed leaves no empty file behind."""
    for dump in dumps:
        os.close(dump.fd)
        dump.path.unlink(missing_ok=True)


def _close_and_describe(directory: Path, capture: _Capture, meta: dict[str, Any],
                        keep: int) -> None:
    for dump in capture.dumps:
        os.close(dump.fd)
    meta["files"] = [{"name": d.path.name, "interface": d.interface,
                      "bytes": d.cutter.written, "packets": d.cutter.packets}
                     for d in capture.dumps]
    path = directory / f"trace-{capture.id}.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(meta, out, indent=1, sort_keys=True)
    _prune(directory, keep, None)


def _capture_ids(directory: Path) -> dict[str, list[Path]]:
    """Capture id -> its files (pcaps and metadata), from the names alone."""
    ids: dict[str, list[Path]] = {}
    for path in directory.iterdir():
        match = _PCAP_NAME.fullmatch(path.name) or _META_NAME.fullmatch(path.name)
        if match:
            ids.setdefault(match.group(1), []).append(path)
    return ids


def _prune(directory: Path, keep: int, running: str | None) -> None:
    """Delete every capture but the newest ``keep`` (and the running one)."""
    ids = _capture_ids(directory)
    finished = sorted((i for i in ids if i != running), reverse=True)
    for old in finished[keep:]:
        for path in ids[old]:
            path.unlink(missing_ok=True)
            _LOGGER.info("Deleted old call trace file %s", path.name)


def _list_captures(directory: Path) -> list[dict[str, Any]]:
    """Kept captures newest first: their metadata with each file's size on disk now.
    A capture without metadata was cut short by a crash; it is listed as such."""
    out = []
    for capture_id, paths in sorted(_capture_ids(directory).items(), reverse=True):
        meta_path = next((p for p in paths if p.suffix == ".json"), None)
        meta: dict[str, Any] = {"id": capture_id, "stop_reason": "interrupted: the gateway "
                                "stopped before the trace ended"}
        if meta_path is not None:
            with contextlib.suppress(OSError, ValueError):
                meta = json.loads(meta_path.read_text(encoding="utf-8"))
        meta["files"] = [{"name": p.name, "bytes": p.stat().st_size}
                         for p in sorted(paths) if p.suffix == ".pcap"]
        out.append(meta)
    return out


def _read_chunk(path: Path, offset: int, limit_mb: int) -> tuple[bytes, int, str | None]:
    """(chunk at offset, file size, sha256 of the file when the chunk is its last)."""
    size = path.stat().st_size
    if size > limit_mb * 1024 * 1024:
        raise TraceTooLarge(f"file: {path.name} is {size} bytes, above sip.trace."
                            f"fetch_max_mb ({limit_mb} MiB); download it from the page")
    if offset > size:
        raise InvalidTraceParams(f"offset: {offset} is past the end ({size} bytes)")
    with path.open("rb") as f:
        f.seek(offset)
        chunk = f.read(FETCH_CHUNK)
        digest = None
        if offset + len(chunk) >= size:
            f.seek(0)
            digest = hashlib.file_digest(f, "sha256").hexdigest()
    return chunk, size, digest


def pcap_path(directory: Path, name: str) -> Path:
    """The capture file ``name`` in ``directory``; anything else (a path, another file,
    a missing file) is ``TraceFileUnavailable``. Blocking (stat): call in a thread."""
    if not _PCAP_NAME.fullmatch(name):
        raise TraceFileUnavailable("file: not a call trace file name (trace-<time>-"
                                   "<interface>.pcap, as listed by GET /api/v1/trace)")
    path = directory / name
    if not path.is_file():
        raise TraceFileUnavailable(f"file: {name} does not exist (any more); old traces "
                                   "are deleted after sip.trace.keep newer ones")
    return path
