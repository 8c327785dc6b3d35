"""Persistent state: the SQLite database and what lives in it.

``Store`` is the component the daemon opens first and closes last; other components get
its parts (``outbox``, ``history``, ``alerts``, ``settings``, ``secrets``).
"""

from __future__ import annotations

import asyncio
from typing import Self

from clgwd.component import StatusTracker
from clgwd.config import ClgwdConfig
from clgwd.store.alerts import Alert, Alerts, Severity
from clgwd.store.db import Database, ReadOnlyDatabase, Transaction
from clgwd.store.history import Action, Event, EventFilter, EventHistory, events_to_csv
from clgwd.store.outbox import Outbox, OutboxFullError, OutboxRecord
from clgwd.store.secretbox import (
    KEY_FILENAME,
    SecretBox,
    SecretStore,
    load_or_create_key,
    read_key,
)
from clgwd.store.settings import Settings

__all__ = [
    "Action", "Alert", "Alerts", "Database", "Event", "EventFilter", "EventHistory",
    "Outbox", "OutboxFullError", "OutboxRecord", "SecretStore", "Settings", "Severity",
    "Store", "Transaction", "events_to_csv",
]


class Store:
    """The state database plus the typed helpers built on it (component ``store``)."""

    name = "store"

    def __init__(self, config: ClgwdConfig, *, read_only: bool = False) -> None:
        """``read_only``: open the database with ``ReadOnlyDatabase`` (no writes, no
        migrations) and the secret key only if it exists, for tools that run while no
        daemon does."""
        self.read_only = read_only
        self.db = ReadOnlyDatabase(config.state.dir) if read_only else Database(
            config.state.dir)
        self.tracker: StatusTracker = self.db.tracker
        self.outbox = Outbox(self.db, config.state.outbox_max_records)
        self.history = EventHistory(self.db, self.outbox)
        self.alerts = Alerts(self.db, self.outbox)
        self.settings = Settings(self.db)
        self._secrets: SecretStore | None = None

    @property
    def has_secrets(self) -> bool:
        """False only for a read-only store whose state dir has no key file."""
        return self._secrets is not None

    @property
    def secrets(self) -> SecretStore:
        if self._secrets is None:
            raise RuntimeError("store is not open (or read-only without a key file)")
        return self._secrets

    async def __aenter__(self) -> Self:
        await self.db.__aenter__()
        path = self.db.state_dir / KEY_FILENAME
        try:
            key = await asyncio.to_thread(read_key if self.read_only else load_or_create_key,
                                          path)
        except BaseException:
            await self.db.__aexit__(None, None, None)
            raise
        if key is not None:
            self._secrets = SecretStore(self.db, SecretBox(key))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.db.__aexit__(*exc_info)

    async def run(self) -> None:
        """No loops of its own."""

    async def apply_config(self, config: ClgwdConfig) -> None:
        self.outbox.max_records = config.state.outbox_max_records
        await self.db.apply_config(config)
