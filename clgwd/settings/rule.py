"""The one rule that decides a setting's effective value and where it came from.

Layers, lowest first: ``default`` (built into clgwd), ``file`` (the YAML config),
then the values saved at run time in the state database, stamped ``page`` (the
onboarding page or the local CLI: someone at the gateway) or ``cloud``. A saved value
wins over the file; with nothing saved the file applies, and a key the file leaves
out has its default. A key the cloud wrote into the file with ``config.set`` reports
``cloud`` for as long as the file still holds the value the cloud wrote.

Which keys can be saved, and through which command, is ``SAVED_KEYS``. Pure
functions only: ``clgwd.settings.saved`` does the I/O. docs/settings.md has the
whole rule.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from functools import cached_property
from pathlib import PurePath
from typing import Any, Final

from pydantic import BaseModel, ValidationError

from clgwd.commands import CLOUD_ACTOR
from clgwd.config import ClgwdConfig
from clgwd.config.cloud import saved_cloud_address, with_saved_address
from clgwd.config.loader import describe_issue, format_location
from clgwd.config.pbx import PbxConfig
from clgwd.config.proxy import page_proxy
from clgwd.config.secret import Secret
from clgwd.errors import ClgwdError

SECRET_MARKER: Final = "set"  # noqa: S105 - shown instead of a set secret's value


class Source(StrEnum):
    DEFAULT = "default"
    FILE = "file"
    PAGE = "page"
    CLOUD = "cloud"


def source_of(actor: str) -> Source:
    """``cloud`` for the cloud, ``page`` for anyone at the gateway (page or CLI)."""
    return Source.CLOUD if actor == CLOUD_ACTOR else Source.PAGE


PBX_PAGE_FIELDS: Final = ("type", "name", "host", "port", "username")
"""The PBX keys the page saves for every type (``pbx.set``); the type's options too."""
SAVED_KEYS: Final[Mapping[str, str]] = {
    "pbx": "pbx.set, from the onboarding page's PBX step or the CLI at the gateway",
    "sync.interval_minutes": "sync.schedule.set, from the onboarding page's Sync step, "
                             "the CLI or the cloud",
    "cloud.proxy": "cloud.proxy.set, from the onboarding page's Cloud step at the gateway",
    "cloud.proxy_from_environment": "cloud.proxy.set (\"no proxy\"), from the onboarding "
                                    "page's Cloud step at the gateway",
    "cloud.url": "cloud.enroll with the address, from the onboarding page's Cloud step or "
                 "clgwd enroll --cloud-url at the gateway",
    "cloud.enrollment_ca_file": "cloud.enroll with the cloud's CA certificate, from the "
                                "onboarding page's Cloud step or clgwd enroll --cloud-ca at "
                                "the gateway",
    "monitor.snmp": "monitor.set, from the Advanced page's SNMP agent form, the CLI or the "
                    "cloud",
    "monitor.mqtt": "monitor.set, from the Advanced page's MQTT form, the CLI or the cloud",
    "inventory.interval": "inventory.settings.set, from the Advanced page's inventory form, "
                          "the CLI or the cloud",
    "inventory.platforms": "inventory.settings.set, from the Advanced page's inventory "
                           "form, the CLI or the cloud",
}
"""Key prefixes a value can be saved for at run time, and the command that saves it."""
SECTION_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    "monitor.snmp": ("listen", "community", "users", "traps", "location", "contact"),
    "monitor.mqtt": ("url", "username", "password", "ca_file", "topic_prefix"),
    "inventory": ("interval", "platforms"),
}
"""Config sections the Advanced page saves as a whole, and the keys of each it saves;
the section's other keys (``monitor.snmp.max_repetitions``, ...) come from the file."""


class InvalidSavedSettings(ClgwdError):
    code = "invalid_input"
    http_status = 422


class SettingOverridden(ClgwdError):
    """A write to the file would change nothing: a saved value wins for that key."""

    code = "setting_overridden"
    http_status = 409


@dataclass(frozen=True)
class Mark:
    """Who set a key, when, and (for the cloud's writes into the file) a salted digest
    of the value written, so a later hand edit of the file is told apart."""

    source: Source
    actor: str | None = None
    at: float | None = None
    digest: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"source": self.source.value, "actor": self.actor, "at": self.at,
                "digest": self.digest}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Mark:
        return cls(Source(data["source"]), data.get("actor"), data.get("at"),
                   data.get("digest"))


# -- the PBX section: the file's with what was saved -----------------------------------------


def merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Nested mappings merge key by key; any other overlay value replaces the base's."""
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def effective_pbx(file_pbx: PbxConfig, overlay: Mapping[str, Any] | None,
                  password: Secret | None) -> PbxConfig:
    """The file's ``pbx`` section with the saved overlay and password applied; refuses
    (naming the key) a combination that does not validate."""
    if not overlay and password is None:
        return file_pbx
    base = file_pbx.model_dump(exclude={"password"})
    try:
        merged = PbxConfig.model_validate(merge(base, overlay or {}), strict=False)
    except ValidationError as err:
        issue = err.errors()[0]
        where = ".".join(str(p) for p in issue["loc"]) or "pbx"
        raise InvalidSavedSettings(f"pbx.{where}: {issue['msg']}") from None
    secret = password if password is not None else file_pbx.password
    return merged.model_copy(update={"password": secret or None})


def overlay_keys(overlay: Mapping[str, Any], prefix: str = "pbx") -> list[str]:
    """Dotted keys (``pbx.host``, ``pbx.ldap.base_dn``) an overlay sets."""
    out: list[str] = []
    for key, value in overlay.items():
        path = f"{prefix}.{key}"
        out.extend(overlay_keys(value, path) if isinstance(value, Mapping) else [path])
    return out


# -- leaves, values, digests ---------------------------------------------------------------


def leaves(node: BaseModel, prefix: str = "") -> dict[str, Any]:
    """Every leaf of a config model by dotted key; lists and mappings are leaves."""
    out: dict[str, Any] = {}
    for name in type(node).model_fields:
        value = getattr(node, name)
        path = f"{prefix}.{name}" if prefix else name
        if isinstance(value, BaseModel):
            out.update(leaves(value, path))
        else:
            out[path] = value
    return out


def explicitly_set(config: BaseModel, key: str) -> bool:
    """Whether the file wrote ``key`` (every level of it), rather than its default."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, BaseModel) or part not in node.model_fields_set:
            return False
        node = getattr(node, part)
    return True


def plain(value: Any) -> Any:
    """``value`` as JSON data, secrets revealed (for digests only, never for output)."""
    return _json_data(value, reveal=True)


def public(value: Any) -> Any:
    """``value`` as JSON data for an answer: a set secret is ``"set"``, never shown."""
    return _json_data(value, reveal=False)


def _json_data(value: Any, *, reveal: bool) -> Any:
    if isinstance(value, Secret):
        return value.reveal() if reveal else (SECRET_MARKER if value else None)
    if isinstance(value, BaseModel):
        return {k: _json_data(getattr(value, k), reveal=reveal)
                for k in type(value).model_fields}
    if isinstance(value, Mapping):
        return {str(k): _json_data(v, reveal=reveal) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_json_data(v, reveal=reveal) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, PurePath):
        return str(value)
    return value


def digest(salt: str, key: str, value: Any) -> str:
    """A salted digest of a written value (secrets included; the value is not kept)."""
    text = json.dumps(plain(value), sort_keys=True, default=str)
    return hashlib.sha256(f"{salt}\0{key}\0{text}".encode()).hexdigest()


def changed_leaves(old: BaseModel, new: BaseModel) -> dict[str, Any]:
    """The leaves whose value differs, with the new value."""
    before, after = leaves(old), leaves(new)
    return {k: v for k, v in after.items() if before.get(k) != v}


# -- the effective settings --------------------------------------------------------------


@dataclass(frozen=True)
class Effective:
    """The effective config, and for each key its source (``source``/``entry``)."""

    config: ClgwdConfig
    file: ClgwdConfig
    saved: Mapping[str, Mark]
    """Saved keys in force (a saved PBX that no longer fits the file is not)."""
    file_marks: Mapping[str, Mark] = field(default_factory=dict)
    salt: str = ""
    notes: tuple[str, ...] = ()
    """Why a saved value is not in force, in words for the technician."""

    def source(self, key: str) -> Source:
        mark = self.mark(key)
        if mark is not None:
            return mark.source
        return Source.FILE if explicitly_set(self.file, key) else Source.DEFAULT

    @cached_property
    def _in_force(self) -> dict[str, Any]:
        return leaves(self.config)

    @cached_property
    def _in_file(self) -> dict[str, Any]:
        return leaves(self.file)

    def mark(self, key: str) -> Mark | None:
        """The saved value's mark, or the cloud's mark while the file keeps its value."""
        if key in self.saved:
            return self.saved[key]
        mark = self.file_marks.get(key)
        if mark is not None and mark.digest == digest(self.salt, key, self._in_file.get(key)):
            return mark
        return None

    def entry(self, key: str) -> dict[str, Any]:
        """One key's report: effective value (secrets as "set"), source, who and when."""
        values = self._in_force
        if key not in values:
            raise KeyError(key)
        mark = self.mark(key)
        return {"key": key, "value": public(values[key]), "source": self.source(key).value,
                "set_by": mark.actor if mark else None, "set_at": mark.at if mark else None}

    def report(self, prefixes: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Entries for every leaf key, or those under the given key prefixes."""
        wanted = tuple(prefixes) if prefixes is not None else None
        return [self.entry(k) for k in self._in_force
                if wanted is None or any(k == p or k.startswith(p + ".") for p in wanted)]


def resolve(file: ClgwdConfig, *, overlay: Mapping[str, Any] | None,
            password: Secret | None, interval: int | None, marks: Mapping[str, Mark],
            file_marks: Mapping[str, Mark], salt: str = "",
            proxy: Mapping[str, Any] | None = None,
            proxy_password: Secret | None = None,
            sections: Mapping[str, SavedSection] | None = None,
            cloud_address: Mapping[str, Any] | None = None) -> Effective:
    """Apply what was saved to the file's config: the one place the rule is applied."""
    saved: dict[str, Mark] = {}
    notes: list[str] = []
    page = Mark(Source.PAGE)
    config = file
    try:
        pbx = effective_pbx(file.pbx, overlay, password)
    except InvalidSavedSettings as err:
        notes.append(f"the PBX settings saved on the page do not fit the config file's pbx "
                     f"section ({err.message}); the file's apply until they are saved again")
    else:
        config = config.model_copy(update={"pbx": pbx})
        keys = overlay_keys(overlay or {}) + (["pbx.password"] if password is not None else [])
        saved.update({k: marks.get(k, page) for k in keys})
    if interval is not None:
        sync = config.sync.model_copy(update={"interval_minutes": interval})
        config = config.model_copy(update={"sync": sync})
        saved["sync.interval_minutes"] = marks.get("sync.interval_minutes", page)
    config = _apply_proxy(config, proxy, proxy_password, marks, saved=saved, notes=notes)
    config = _apply_cloud_address(config, cloud_address, saved=saved, notes=notes)
    for name, section in (sections or {}).items():
        try:
            value = effective_section(file, name, section.values)
        except InvalidSavedSettings as err:
            notes.append(f"the {name} settings saved on the page do not fit the config "
                         f"file ({err.message}); the file's apply until they are saved again")
            continue
        config = replace_section(config, name, value)
        saved.update({f"{name}.{key}": section.mark for key in section.values})
    notes.extend(_overridden(file, config, saved))
    return Effective(config, file, saved, dict(file_marks), salt, tuple(notes))


# -- sections saved as a whole (the Advanced page's monitoring forms) ----------------------


@dataclass(frozen=True)
class SavedSection:
    """A section's keys saved from the page (``SECTION_FIELDS``), secrets as ``Secret``."""

    values: Mapping[str, Any]
    mark: Mark


def section_of(config: ClgwdConfig, name: str) -> BaseModel:
    """The model at a dotted section name (``monitor.snmp``, ``inventory``)."""
    node: Any = config
    for part in name.split("."):
        node = getattr(node, part)
    if not isinstance(node, BaseModel):
        raise KeyError(name)
    return node


def replace_section(config: ClgwdConfig, name: str, value: BaseModel) -> ClgwdConfig:
    """``config`` with the (validated) section at ``name`` replaced."""
    head, _, rest = name.partition(".")
    if not rest:
        return config.model_copy(update={head: value})
    parent = getattr(config, head)
    return config.model_copy(update={head: parent.model_copy(update={rest: value})})


def raw_fields(model: BaseModel) -> dict[str, Any]:
    """A model's fields as data that validates back into it, secrets kept as ``Secret``
    (``model_dump`` would turn them into ``***``)."""
    return {k: _raw(getattr(model, k)) for k in type(model).model_fields}


def _raw(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return raw_fields(value)
    if isinstance(value, list | tuple):
        return [_raw(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    return value


def effective_section(file: ClgwdConfig, name: str, values: Mapping[str, Any]) -> BaseModel:
    """The file's section ``name`` with the saved keys over it; refuses (naming the key
    path, never the rejected value) a combination that does not validate."""
    current = section_of(file, name)
    try:
        return type(current).model_validate({**raw_fields(current), **values})
    except ValidationError as err:
        raise InvalidSavedSettings(describe_section_error(name, err)) from None


def describe_section_error(name: str, err: ValidationError) -> str:
    """``monitor.snmp.users[0].auth_key: must be at least 8 characters (RFC 3414)``."""
    issues = []
    for issue in err.errors(include_url=False)[:5]:
        where = format_location([p for p in issue["loc"]
                                 if not (isinstance(p, str) and p.startswith("function-"))])
        issues.append(f"{name}.{where}: {describe_issue(issue)}" if where
                      else f"{name}: {describe_issue(issue)}")
    return "; ".join(issues)


def _apply_proxy(config: ClgwdConfig, stored: Mapping[str, Any] | None,
                 password: Secret | None, marks: Mapping[str, Mark], *,
                 saved: dict[str, Mark], notes: list[str]) -> ClgwdConfig:
    """The page's proxy (``cloud.proxy.set``) over the file's ``cloud.proxy``: a proxy
    it sets replaces the file's; "no proxy" also turns off ``HTTPS_PROXY``. The same
    precedence as ``clgwd.config.proxy.effective_proxy``, which the link uses."""
    try:
        proxy, disabled = page_proxy(stored, password)
    except ValueError as err:
        notes.append(f"the proxy saved on the page is not valid ({err}); the config file's "
                     "applies until it is saved again")
        return config
    page = Mark(Source.PAGE)
    if proxy is not None:
        cloud = config.cloud.model_copy(update={"proxy": proxy})
        keys = [f"cloud.proxy.{k}" for k in ("host", "port", "username", "no_proxy")]
        keys += ["cloud.proxy.password"] if proxy.password is not None else []
    elif disabled:
        cloud = config.cloud.model_copy(update={"proxy": None,
                                                "proxy_from_environment": False})
        keys = ["cloud.proxy", "cloud.proxy_from_environment"]
    else:
        return config
    saved.update({k: marks.get(k, page) for k in keys})
    return config.model_copy(update={"cloud": cloud})


def _apply_cloud_address(config: ClgwdConfig, stored: Mapping[str, Any] | None, *,
                         saved: dict[str, Mark], notes: list[str]) -> ClgwdConfig:
    """The address saved by a successful ``cloud.enroll`` over the file's ``cloud.url``
    (and, with it, the CA: ``clgwd.config.cloud.with_saved_address``, which the link
    uses too)."""
    try:
        address = saved_cloud_address(stored)
    except ValueError as err:
        notes.append(f"the cloud address saved on the page is not valid ({err}); the "
                     "config file's applies until the gateway is enrolled again")
        return config
    if address is None:
        return config
    cloud = with_saved_address(config.cloud, address)
    mark = Mark(Source.PAGE, address.actor, address.at)
    saved["cloud.url"] = mark
    if cloud.enrollment_ca_file != config.cloud.enrollment_ca_file:
        saved["cloud.enrollment_ca_file"] = mark
    return config.model_copy(update={"cloud": cloud})


def _overridden(file: ClgwdConfig, config: ClgwdConfig, saved: Mapping[str, Mark]
                ) -> list[str]:
    """A note per key the file sets to another value than the saved one in force, so a
    hand edit of the file that cannot apply is never silent."""
    in_file, in_force = leaves(file), leaves(config)
    return [f"{key}: the config file's value does not apply: the value saved from the "
            f"{saved[key].source.value}{f' by {saved[key].actor}' if saved[key].actor else ''} "
            f"wins; change it with {SAVED_KEYS[_prefix(key)]}"
            for key in sorted(saved)
            if explicitly_set(file, key) and in_file.get(key) != in_force.get(key)]


def _prefix(key: str) -> str:
    return next(p for p in SAVED_KEYS if key == p or key.startswith(p + "."))


def check_file_change(effective: Effective, new_file: ClgwdConfig) -> dict[str, Any]:
    """The leaves a file change touches; refuses one that a saved value overrides
    (the write would change nothing), naming the keys and what to use instead."""
    changed = changed_leaves(effective.file, new_file)
    shadowed = sorted(k for k in changed if k in effective.saved)
    if shadowed:
        reasons = []
        for key in shadowed:
            mark = effective.saved[key]
            who = f" by {mark.actor}" if mark.actor else ""
            reasons.append(f"{key}: saved from the {mark.source.value}{who}, which wins over "
                           f"the config file; change it with {SAVED_KEYS[_prefix(key)]}")
        raise SettingOverridden("; ".join(reasons))
    return changed
