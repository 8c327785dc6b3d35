"""What the page and the cloud saved, read from and written to the state database.

Stored (docs/settings.md):

| what | where |
|---|---|
| PBX keys saved with ``pbx.set`` (the page's fields for the type) | setting ``sync.pbx`` |
| PBX password saved with ``pbx.set`` | secret ``sync.pbx_password`` (encrypted) |
| sync interval saved with ``sync.schedule.set`` | setting ``sync.interval`` |
| who saved each key and when; the cloud's ``config.set`` writes | setting ``settings.marks`` |
| the page's proxy (``cloud.proxy.set``, by ``clgwd.link.proxy``) | setting ``cloud.proxy`` |
| that proxy's password | secret ``cloud.proxy.password`` |
| address and CA saved by ``cloud.enroll`` (``clgwd.link.address``) | setting ``cloud.address`` |
| an Advanced page section, secrets left out, and who saved it | setting ``saved.<section>`` |
| that section's secrets (community, v3 keys, passwords) | secret ``saved.<section>`` |

(Sections: ``monitor.snmp``, ``monitor.mqtt`` with ``monitor.set``; ``inventory`` with
``inventory.settings.set``. Secrets are one JSON list in the secret box, encrypted.)

``SavedSettings`` is an immutable snapshot: a write returns the next snapshot, which
the caller keeps once the transaction has committed. Every component that needs an
effective value (sync, the offline preview, ``config.get``) loads one and calls
``resolve``: the rule itself is ``clgwd.settings.rule``.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from clgwd.config import ClgwdConfig
from clgwd.config.cloud import ADDRESS_SETTING
from clgwd.config.proxy import PAGE_SECRET, PAGE_SETTING
from clgwd.config.secret import Secret
from clgwd.settings.rule import (
    SECTION_FIELDS,
    Effective,
    Mark,
    SavedSection,
    Source,
    digest,
    overlay_keys,
    resolve,
    source_of,
)
from clgwd.store import Store
from clgwd.store.db import Transaction

_LOGGER = logging.getLogger(__name__)

SETTING_PBX: Final = "sync.pbx"
SETTING_INTERVAL: Final = "sync.interval"
SECRET_PASSWORD: Final = "sync.pbx_password"  # noqa: S105 - the secret's name
SETTING_MARKS: Final = "settings.marks"
SECTION_PREFIX: Final = "saved."
"""Setting and secret ``saved.<section>``: a section saved from the Advanced page."""
_SECRET_SLOT: Final = "$secret"  # noqa: S105 - the placeholder's key, not a secret


@dataclass(frozen=True)
class SavedSettings:
    overlay: Mapping[str, Any] | None = None
    """PBX keys saved with ``pbx.set``; None: none saved."""
    password: Secret | None = None
    interval: int | None = None
    marks: Mapping[str, Mark] = field(default_factory=dict)
    """Who saved each saved key (keys saved before marks existed have none: ``page``)."""
    file_marks: Mapping[str, Mark] = field(default_factory=dict)
    """Keys the cloud wrote into the config file, with a digest of the value written."""
    salt: str = ""
    proxy: Mapping[str, Any] | None = None
    """The page's proxy setting (``cloud.proxy.set``); None: none saved."""
    proxy_password: Secret | None = None
    sections: Mapping[str, SavedSection] = field(default_factory=dict)
    """Sections saved as a whole from the Advanced page (``SECTION_FIELDS``)."""
    cloud_address: Mapping[str, Any] | None = None
    """The cloud address (and CA) saved by a successful ``cloud.enroll`` with them
    (written by ``clgwd.link.address``); None: none saved."""

    @classmethod
    async def load(cls, store: Store) -> SavedSettings:
        password = proxy_password = None
        if store.has_secrets:
            password = await store.secrets.get(SECRET_PASSWORD)
            proxy_password = await store.secrets.get(PAGE_SECRET)
        else:
            _LOGGER.warning("no secret key file in the state dir; a PBX password saved on "
                            "the page cannot be read, the config file's applies")
        raw = await store.settings.get(SETTING_MARKS) or {}
        return cls(overlay=await store.settings.get(SETTING_PBX), password=password,
                   interval=await store.settings.get(SETTING_INTERVAL),
                   marks=_marks(raw.get("saved", {})), file_marks=_marks(raw.get("file", {})),
                   salt=str(raw.get("salt", "")),
                   proxy=await store.settings.get(PAGE_SETTING), proxy_password=proxy_password,
                   sections=await load_sections(store),
                   cloud_address=await store.settings.get(ADDRESS_SETTING))

    def resolve(self, file: ClgwdConfig) -> Effective:
        """The effective settings over ``file`` (the one rule, ``rule.resolve``)."""
        return resolve(file, overlay=self.overlay, password=self.password,
                       interval=self.interval, marks=self.marks, file_marks=self.file_marks,
                       salt=self.salt, proxy=self.proxy, proxy_password=self.proxy_password,
                       sections=self.sections, cloud_address=self.cloud_address)

    # -- writes (inside the caller's transaction) ---------------------------------------------

    async def save_pbx(self, tx: Transaction, store: Store, overlay: Mapping[str, Any],
                       password: Secret | None, actor: str) -> SavedSettings:
        """Save the PBX keys (and a new password, None: keep the saved one)."""
        mark = Mark(source_of(actor), actor, time.time())
        marks = {k: m for k, m in self.marks.items()
                 if not k.startswith("pbx.") or (k == "pbx.password" and password is None)}
        marks.update(dict.fromkeys(overlay_keys(overlay), mark))
        await store.settings.set_in(tx, SETTING_PBX, dict(overlay))
        if password is not None:
            await store.secrets.put_in(tx, SECRET_PASSWORD, password)
            marks["pbx.password"] = mark
        nxt = replace(self, overlay=dict(overlay), marks=marks,
                      password=password if password is not None else self.password)
        await nxt.write_marks(tx, store)
        return nxt

    async def save_interval(self, tx: Transaction, store: Store, minutes: int,
                            actor: str) -> SavedSettings:
        await store.settings.set_in(tx, SETTING_INTERVAL, minutes)
        marks = {**self.marks, "sync.interval_minutes": Mark(source_of(actor), actor,
                                                             time.time())}
        nxt = replace(self, interval=minutes, marks=marks)
        await nxt.write_marks(tx, store)
        return nxt

    async def forget(self, tx: Transaction, store: Store, prefix: str) -> SavedSettings:
        """Drop what was saved under ``prefix`` (``pbx`` or ``sync.interval_minutes``):
        the file's values apply again."""
        marks = {k: m for k, m in self.marks.items()
                 if not (k == prefix or k.startswith(prefix + "."))}
        if prefix == "pbx":
            await store.settings.delete_in(tx, SETTING_PBX)
            await store.secrets.delete_in(tx, SECRET_PASSWORD)
            nxt = replace(self, overlay=None, password=None, marks=marks)
        else:
            await store.settings.delete_in(tx, SETTING_INTERVAL)
            nxt = replace(self, interval=None, marks=marks)
        await nxt.write_marks(tx, store)
        return nxt

    async def record_file_write(self, tx: Transaction, store: Store,
                                changed: Mapping[str, Any], actor: str) -> SavedSettings:
        """``config.set`` wrote ``changed`` (key -> new value) into the file: the cloud's
        writes report ``cloud`` while the file keeps them; anyone else's are the file's."""
        salt = self.salt or secrets.token_hex(16)
        file_marks = {k: m for k, m in self.file_marks.items() if k not in changed}
        if source_of(actor) == Source.CLOUD:
            now = time.time()
            file_marks.update({k: Mark(Source.CLOUD, actor, now, digest(salt, k, v))
                               for k, v in changed.items()})
        nxt = replace(self, file_marks=file_marks, salt=salt)
        await nxt.write_marks(tx, store)
        return nxt

    async def write_marks(self, tx: Transaction, store: Store) -> None:
        """Store this snapshot's marks (also to put back an earlier snapshot's)."""
        await store.settings.set_in(tx, SETTING_MARKS, {
            "saved": {k: m.as_json() for k, m in self.marks.items()},
            "file": {k: m.as_json() for k, m in self.file_marks.items()},
            "salt": self.salt})


# -- sections saved as a whole ----------------------------------------------------------------
# Each has its own setting row (with its own mark), so two components saving their
# sections, or the sync saving the PBX, never overwrite each other's marks.


async def load_sections(store: Store) -> dict[str, SavedSection]:
    """The sections saved from the page; one that cannot be read is left out (logged)."""
    out: dict[str, SavedSection] = {}
    for name in SECTION_FIELDS:
        row = await store.settings.get(SECTION_PREFIX + name)
        if row is None:
            continue
        try:
            slots: list[str] = []
            if _has_secrets(row["values"]) and store.has_secrets:
                sealed = await store.secrets.get(SECTION_PREFIX + name)
                slots = json.loads(sealed.reveal()) if sealed is not None else []
            values = _fill_secrets(row["values"], slots)
            out[name] = SavedSection(values, Mark(Source(row["source"]), row.get("actor"),
                                                  row.get("at")))
        except (KeyError, TypeError, ValueError, IndexError) as err:
            _LOGGER.warning("settings: the %s settings saved on the page cannot be read "
                            "(%s); the config file's apply", name, type(err).__name__)
    return out


async def save_section(tx: Transaction, store: Store, name: str, values: Mapping[str, Any],
                       actor: str) -> SavedSection:
    """Store a section's saved keys: the secrets encrypted (one JSON list in the secret
    box), the rest in clear with a slot number where each secret was."""
    slots: list[str] = []
    public = _take_secrets(values, slots)
    mark = Mark(source_of(actor), actor, time.time())
    await store.settings.set_in(tx, SECTION_PREFIX + name, {
        "values": public, "source": mark.source.value, "actor": actor, "at": mark.at})
    if slots:
        await store.secrets.put_in(tx, SECTION_PREFIX + name, Secret(json.dumps(slots)))
    else:
        await store.secrets.delete_in(tx, SECTION_PREFIX + name)
    return SavedSection(dict(values), mark)


async def forget_section(tx: Transaction, store: Store, name: str) -> None:
    """Drop a saved section: the config file's values apply again."""
    await store.settings.delete_in(tx, SECTION_PREFIX + name)
    await store.secrets.delete_in(tx, SECTION_PREFIX + name)


def _take_secrets(value: Any, slots: list[str]) -> Any:
    if isinstance(value, Secret):
        slots.append(value.reveal())
        return {_SECRET_SLOT: len(slots) - 1}
    if isinstance(value, Mapping):
        return {str(k): _take_secrets(v, slots) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_take_secrets(v, slots) for v in value]
    return value


def _fill_secrets(value: Any, slots: list[str]) -> Any:
    if isinstance(value, Mapping):
        if set(value) == {_SECRET_SLOT}:
            return Secret(slots[int(value[_SECRET_SLOT])])
        return {str(k): _fill_secrets(v, slots) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_secrets(v, slots) for v in value]
    return value


def _has_secrets(value: Any) -> bool:
    if isinstance(value, Mapping):
        return set(value) == {_SECRET_SLOT} or any(_has_secrets(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_secrets(v) for v in value)
    return False


def _marks(raw: Mapping[str, Any]) -> dict[str, Mark]:
    out: dict[str, Mark] = {}
    for key, value in raw.items():
        try:
            out[str(key)] = Mark.from_json(value)
        except (KeyError, TypeError, ValueError):
            _LOGGER.warning("settings: unreadable mark for %s ignored", key)
    return out
