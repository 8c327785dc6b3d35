"""An in-memory ``UserSource`` and small builders for the sync tests."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from clgwd.config import ClgwdConfig, parse_config
from clgwd.pbx.model import Device, PbxUser, RowProblem, SourceError, SourceRead

if TYPE_CHECKING:
    from clgwd.sync.component import SyncService

CSV = Path(__file__).parents[2] / "clgwd" / "pbx" / "samples" / "directory.csv"
"""The demo's sample directory (20 users, 3 without and 2 sharing an email)."""


def config(state_dir: Path, extra: str = "") -> ClgwdConfig:
    """A config with the state dir and ``extra`` YAML (a pbx or sync section)."""
    return parse_config(f"state: {{dir: {state_dir}}}\n{extra}")


def user(key: str, ext: str = "", email: str | None = None, **fields: object) -> PbxUser:
    """A user with a derived extension/email unless given."""
    ext = ext or key.removeprefix("u")
    mail = f"{key}@example.com" if email is None else email
    base: dict[str, object] = {
        "extension": ext, "first_name": f"First{key}", "last_name": f"Last{key}",
        "email": mail, "client_username": key,
        "devices": (Device(kind="ip-phone", mac="00:08:5D:00:00:01"),)}
    base.update(fields)
    return PbxUser(source_key=key, **base)  # type: ignore[arg-type]


def users(n: int, start: int = 1) -> list[PbxUser]:
    return [user(f"u{i}") for i in range(start, start + n)]


class FakeSource:
    """A source whose next read returns (or raises) whatever the test set."""

    kind = "fake"

    def __init__(self, initial: list[PbxUser] | None = None) -> None:
        self.users: list[PbxUser] = list(initial or [])
        self.problems: list[RowProblem] = []
        self.error: SourceError | None = None
        self.delay = 0.0
        self.reads = 0
        self.started = asyncio.Event()

    def describe(self) -> str:
        return "fake source"

    async def read_users(self) -> SourceRead:
        self.reads += 1
        self.started.set()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return SourceRead(list(self.users), list(self.problems))


def with_fake(service: SyncService, source: FakeSource) -> FakeSource:
    """Make ``service`` read from ``source`` instead of its configured PBX."""
    assert service._engine is not None
    service._engine.source = source
    return source
