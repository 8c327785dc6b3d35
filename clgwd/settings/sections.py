"""What a front door sends to save a section (``SECTION_FIELDS``), made into saved keys.

Pure functions: the owning component (monitor, inventory) calls ``prepare`` with its
current effective section, stores the result (``saved.save_section``) and applies it.

Secrets are write-only. In what the page, the CLI or the cloud sends, a secret that is
``null`` (or left out) keeps the one in force; ``""`` removes an optional one (the v2c
community, the broker password). In lists, "the one in force" is the entry with the same
name: a v3 user's keys by user name, a trap manager's community by address, a LAN
platform's community or v3 user by platform name. docs/settings.md has the rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from pydantic import BaseModel

from clgwd.config import ClgwdConfig
from clgwd.settings.rule import (
    SECTION_FIELDS,
    InvalidSavedSettings,
    SavedSection,
    changed_leaves,
    effective_section,
    public,
    raw_fields,
)

OPTIONAL_SECRETS: Final[Mapping[str, tuple[str, ...]]] = {
    "monitor.snmp": ("community",),
    "monitor.mqtt": ("password",),
    "inventory": (),
}
"""Secrets of a section that ``""`` removes (``null`` keeps them)."""
_KEYS: Final = ("auth_key", "priv_key")


@dataclass(frozen=True)
class Prepared:
    """The keys to save (validated, secrets as ``Secret``) and the section they make."""

    values: dict[str, Any]
    section: BaseModel
    changed: list[str]
    """Keys whose effective value changes (secrets by name only)."""
    shown: dict[str, Any]
    """The changed keys' new values for the history event, secrets as "set"."""


def prepare(file: ClgwdConfig, name: str, params: Mapping[str, Any], current: BaseModel,
            previous: SavedSection | None) -> Prepared:
    """Validate ``params`` for section ``name`` over the file's section and what was
    saved before; refuses with ``invalid_input`` naming the key path."""
    fields = SECTION_FIELDS[name]
    unknown = sorted(set(params) - set(fields))
    if unknown:
        raise InvalidSavedSettings(f"{name}.{unknown[0]}: not a setting of this form; it "
                                   f"sets {', '.join(fields)}")
    if not params:
        raise InvalidSavedSettings(f"{name}: nothing to save; send at least one of "
                                   f"{', '.join(fields)}")
    values = dict(previous.values) if previous is not None else {}
    values.update(_with_kept_secrets(name, params, current))
    section = effective_section(file, name, values)
    stored = {k: raw_fields(section)[k] for k in values}
    before, after = raw_fields(current), raw_fields(section)
    changed = sorted(k for k in fields if before[k] != after[k])
    diff = changed_leaves(current, section)
    shown = {k: public(diff[k]) for k in changed if k in diff}
    return Prepared(stored, section, changed, shown)


def _with_kept_secrets(name: str, params: Mapping[str, Any], current: Any
                       ) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key in OPTIONAL_SECRETS[name]:
            if value is None:
                if getattr(current, key) is not None:
                    out[key] = getattr(current, key)  # keep the one in force
                continue
            out[key] = None if value == "" else value
        elif key == "users" and isinstance(value, list):
            kept = {u.name: u for u in current.users}
            out[key] = [_keep_user_keys(item, kept) for item in value]
        elif key == "traps" and isinstance(value, list):
            kept = {t.address: t for t in current.traps}
            out[key] = [_keep_trap_community(item, kept) for item in value]
        elif key == "platforms" and isinstance(value, list):
            kept = {p.name: p for p in current.platforms}
            out[key] = [_keep_platform_credential(item, kept) for item in value]
        else:
            out[key] = value
    return out


def _keep_user_keys(item: Any, kept: Mapping[str, Any]) -> Any:
    """A v3 user whose auth_key/priv_key is null keeps the keys of the user in force
    with that name (a new user must give them)."""
    if not isinstance(item, Mapping):
        return item
    old = kept.get(str(item.get("name")))
    out = dict(item)
    for key in _KEYS:
        if out.get(key) is None:
            if old is not None:
                out[key] = getattr(old, key)
            else:
                out.pop(key, None)  # validation says it is required
    return out


def _keep_trap_community(item: Any, kept: Mapping[str, Any]) -> Any:
    """A trap manager with neither community nor user keeps its community in force."""
    if not isinstance(item, Mapping):
        return item
    out = {k: v for k, v in item.items() if not (k in ("community", "user") and v is None)}
    old = kept.get(str(item.get("address")))
    if "community" not in out and "user" not in out and old is not None \
            and old.community is not None:
        out["community"] = old.community
    return out


def _keep_platform_credential(item: Any, kept: Mapping[str, Any]) -> Any:
    """A LAN platform with a null community keeps its community in force; a v3 user
    with null keys keeps the keys of the platform's user in force."""
    if not isinstance(item, Mapping):
        return item
    out = {k: v for k, v in item.items() if not (k in ("community", "user") and v is None)}
    old = kept.get(str(item.get("name")))
    if "user" in out:
        users = {old.user.name: old.user} if old is not None and old.user is not None else {}
        out["user"] = _keep_user_keys(out["user"], users)
    elif "community" not in out and old is not None:
        if old.community is not None:
            out["community"] = old.community
        elif old.user is not None:
            out["user"] = old.user
    return out

