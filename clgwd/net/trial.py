"""Commit-confirm bookkeeping: which port config is confirmed, which one is on trial.

The records live in the ``settings`` table so that a crash or power cut during a trial
is noticed on the next start and rolled back: an unconfirmed change must never survive
a restart, or "changed the IP and lost the box" comes back through the power switch.

Keys (JSON values):

* ``net.confirmed`` - the port list known to be reachable (confirmed or first boot).
* ``net.file_seen`` - the config file's port list as last seen, so a file edited while
  the daemon was stopped is treated as a change that needs confirming.
* ``net.trial``     - ``{candidate, previous, deadline, actor, started, token}`` while on
  trial. ``token`` names this one trial: the onboarding page confirms with it from the
  new address, so a link to an older, replaced or finished trial confirms nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from clgwd.config.network import PortConfig
from clgwd.errors import ClgwdError
from clgwd.store import Database, Settings, Transaction

CONFIRMED_KEY: Final = "net.confirmed"
FILE_SEEN_KEY: Final = "net.file_seen"
TRIAL_KEY: Final = "net.trial"

Ports = tuple[PortConfig, ...]


class NothingToConfirm(ClgwdError):
    code = "nothing_to_confirm"
    http_status = 409


class WrongConfirmToken(ClgwdError):
    """A confirm token that does not name the change waiting for confirmation."""

    code = "wrong_confirm_token"
    http_status = 409


class InvalidPortConfig(ClgwdError):
    """A proposed port list failed validation; nothing was applied."""

    code = "invalid_network_config"
    http_status = 422


def ports_to_json(ports: Sequence[PortConfig]) -> list[dict[str, Any]]:
    return [p.model_dump(mode="json") for p in ports]


def ports_from_json(data: Any) -> Ports:
    """Parse stored ports; a record written by another version fails loudly here."""
    if not isinstance(data, list):
        raise TypeError("stored port list is not a list")
    return tuple(PortConfig.model_validate(item) for item in data)


@dataclass(frozen=True)
class Trial:
    """A port config applied but not yet confirmed."""

    candidate: Ports
    previous: Ports
    deadline: float
    """Wall-clock time (``time.time()``) after which the change is rolled back."""
    actor: str
    started: float
    token: str = ""
    """Opaque confirm token (URL-safe); empty for records written before it existed."""

    def remaining(self, now: float | None = None) -> float:
        return max(0.0, self.deadline - (time.time() if now is None else now))

    def as_json(self) -> dict[str, Any]:
        return {"candidate": ports_to_json(self.candidate),
                "previous": ports_to_json(self.previous), "deadline": self.deadline,
                "actor": self.actor, "started": self.started, "token": self.token}

    @classmethod
    def from_json(cls, data: Any) -> Trial:
        return cls(candidate=ports_from_json(data["candidate"]),
                   previous=ports_from_json(data["previous"]),
                   deadline=float(data["deadline"]), actor=str(data["actor"]),
                   started=float(data["started"]), token=str(data.get("token", "")))


class TrialStore:
    """Reads and writes the three records; each change is one transaction."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings

    async def confirmed(self) -> Ports | None:
        data = await self._settings.get(CONFIRMED_KEY)
        return None if data is None else ports_from_json(data)

    async def file_seen(self) -> Ports | None:
        data = await self._settings.get(FILE_SEEN_KEY)
        return None if data is None else ports_from_json(data)

    async def trial(self) -> Trial | None:
        data = await self._settings.get(TRIAL_KEY)
        return None if data is None else Trial.from_json(data)

    async def write(self, *, confirmed: Sequence[PortConfig] | None = None,
                    file_seen: Sequence[PortConfig] | None = None,
                    trial: Trial | bool | None = False) -> None:
        """Write the given records together (``trial=None`` clears it, ``False`` keeps it)."""
        async with self._db.transaction() as tx:
            await self.write_in(tx, confirmed=confirmed, file_seen=file_seen, trial=trial)

    @staticmethod
    async def write_in(tx: Transaction, *, confirmed: Sequence[PortConfig] | None = None,
                       file_seen: Sequence[PortConfig] | None = None,
                       trial: Trial | bool | None = False) -> None:
        """``write`` inside the caller's transaction (with the event it reports)."""
        if confirmed is not None:
            await Settings.set_in(tx, CONFIRMED_KEY, ports_to_json(confirmed))
        if file_seen is not None:
            await Settings.set_in(tx, FILE_SEEN_KEY, ports_to_json(file_seen))
        if trial is None or isinstance(trial, Trial):
            await Settings.set_in(tx, TRIAL_KEY, None if trial is None else trial.as_json())
