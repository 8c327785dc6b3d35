"""The parameters of the page's PBX and Sync steps (``pbx.set``, ``sync.schedule.set``).

Validation of what the page (or the CLI, or the cloud for the schedule) sends, and the
``pbx.get`` view. What was saved and how it meets the config file is decided in one
place, ``clgwd.settings`` (docs/settings.md); this module only shapes the values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from clgwd.config.pbx import FILE_TYPES, NETWORK_TYPES, UNAVAILABLE_TYPES, PbxConfig
from clgwd.settings import InvalidSavedSettings

INTERVAL_RANGE: Final = (1, 1440)

OPTION_PATHS: Final[Mapping[str, Mapping[str, tuple[str, str]]]] = {
    # page option key -> (sub-section, key) of the pbx config, per PBX type
    "connect_mysql": {"database": ("mysql", "database")},
    "freepbx_mysql": {"database": ("mysql", "database")},
    "ldap": {"base_dn": ("ldap", "base_dn"), "user_filter": ("ldap", "user_filter"),
             "preset": ("ldap", "preset"), "security": ("ldap", "security")},
    "ldif": {"path": ("file", "path"), "preset": ("ldap", "preset")},
    "csv": {"path": ("file", "path")},
    "mivoice_office_400": {}, "mivoice_business": {}, "mx_one": {},
}
"""The options each type takes on the page; ``clgwd/web/catalog.py`` offers the same."""

_OPTION_DEFAULTS: Final = {("ldap", "preset"): "openldap", ("ldap", "security"): "none",
                           ("ldap", "base_dn"): ""}
_PAGE_FIELDS: Final = ("type", "name", "host", "port", "username")


class InvalidPbxSettings(InvalidSavedSettings):
    """``pbx.set`` or ``sync.schedule.set`` parameters that do not validate."""


def _text(params: Mapping[str, Any], key: str, max_len: int) -> str:
    value = params.get(key)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > max_len:
        raise InvalidPbxSettings(f"{key}: must be text of at most {max_len} characters")
    return value.strip()


def overlay_from_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``pbx.set`` params (web, CLI or cloud) into the stored overlay.

    The overlay holds every field the page shows for the type: an option left empty
    is reset to its default rather than falling back to the file, so what the page
    shows after saving is what it saved."""
    unknown = sorted(set(params) - {"type", "name", "address", "port", "username",
                                    "password", "options"})
    if unknown:
        raise InvalidPbxSettings(f"unknown parameter(s) {unknown}")
    pbx_type = _text(params, "type", 40)
    if pbx_type not in OPTION_PATHS:
        raise InvalidPbxSettings(f"type: unknown PBX type {pbx_type!r}; one of "
                                 f"{sorted(OPTION_PATHS)}")
    port = params.get("port")
    if port is not None and (isinstance(port, bool) or not isinstance(port, int)
                             or not 1 <= port <= 65535):
        raise InvalidPbxSettings("port: must be 1-65535")
    options = params.get("options") or {}
    if not isinstance(options, Mapping):
        raise InvalidPbxSettings("options: must be an object of text values")
    paths = OPTION_PATHS[pbx_type]
    extra = sorted(set(options) - set(paths))
    if extra:
        raise InvalidPbxSettings(f"options: {pbx_type} takes {sorted(paths) or 'none'}, "
                                 f"not {extra}")
    overlay: dict[str, Any] = {
        "type": pbx_type, "name": _text(params, "name", 64),
        "host": _text(params, "address", 253) if pbx_type in NETWORK_TYPES else "",
        "port": port if pbx_type in NETWORK_TYPES else None,
        "username": _text(params, "username", 256),
    }
    for key, (section, field) in paths.items():
        value = _text(options, key, 500)
        overlay.setdefault(section, {})[field] = value or _OPTION_DEFAULTS.get(
            (section, field))
    return overlay


def pbx_view(pbx: PbxConfig, *, connected: bool, from_page: bool) -> dict[str, Any]:
    """``pbx.get``'s answer: the effective settings, never the password."""
    options: dict[str, str] = {}
    for key, (section, field) in OPTION_PATHS.get(pbx.type, {}).items():
        value = getattr(getattr(pbx, section), field)
        if value is None:
            value = {("mysql", "database"): ""}.get((section, field), "")
        options[key] = str(value)
    return {
        "configured": pbx.type != "none", "connected": connected, "type": pbx.type,
        "name": pbx.name, "address": pbx.host or None,
        "port": pbx.effective_port if pbx.type in NETWORK_TYPES else None,
        "username": pbx.username, "password_set": bool(pbx.password),
        "options": options, "available": pbx.type not in UNAVAILABLE_TYPES,
        "file_based": pbx.type in FILE_TYPES, "saved_from_page": from_page,
    }


def page_keys(pbx_type: str) -> list[str]:
    """The config keys the PBX step shows for ``pbx_type`` (for the source report)."""
    options = [f"pbx.{section}.{key}" for section, key in OPTION_PATHS.get(pbx_type, {}).values()]
    return [f"pbx.{f}" for f in _PAGE_FIELDS] + ["pbx.password", *options]


def check_interval(params: Mapping[str, Any]) -> int:
    unknown = sorted(set(params) - {"interval_minutes"})
    value = params.get("interval_minutes")
    low, high = INTERVAL_RANGE
    if unknown or isinstance(value, bool) or not isinstance(value, int) \
            or not low <= value <= high:
        raise InvalidPbxSettings(f"interval_minutes: must be {low}-{high} minutes")
    return value
