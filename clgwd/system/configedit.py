"""The cloud's view of the config file: ``config.get`` and ``config.set``.

``config.get`` is the effective config (defaults included) as JSON, every ``Secret``
shown as ``"set"`` (or null when unset), never its value. ``config.set`` applies a JSON
merge patch (RFC 7396) to the YAML document, validates the result with the same
pydantic models as the file loader (errors name the key path), refuses keys the cloud
may not change (``REMOTE_FORBIDDEN``), and writes the file atomically with a backup.
Applying it (the daemon's reload) and restoring the backup on failure is the
component's job; this module is pure except the file helpers (blocking: threads).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import BaseModel, ValidationError

from clgwd.config import ClgwdConfig, Secret
from clgwd.config.loader import parse_yaml, render_validation_error
from clgwd.system.errors import ForbiddenConfigKey
from clgwd.system.errors import InvalidParams as InvalidConfigPatch

SECRET_MARKER: Final = "set"  # noqa: S105 - a marker shown instead of a secret
MAX_PATCH_DEPTH: Final = 12

REMOTE_FORBIDDEN: Final = (
    "state.dir",               # where the database and keys live: moving it loses them
    "control",                 # the local console's socket
    "http.listen",             # a wrong listener locks the technician out of the page
    "http.tls_listen",
    "system",                  # commands the daemon runs: remote code execution
    "cloud.url",               # a wrong URL loses the cloud for good; re-enroll locally
    "cloud.enrollment_ca_file",  # file paths: the cloud must not aim the daemon at files
    "network.resolv_conf",
    "network.ports",           # port changes need commit-confirm: use network.apply
    "pbx.ldap.ca_file",
    "pbx.file.path",
    "monitor.mqtt.ca_file",
)
"""Config keys (and sections) ``config.set`` refuses to change; docs/config-system.md."""


def secret_paths(node: Any, prefix: str = "") -> set[str]:
    """Dotted paths (``pbx.password``, ``ports[0].x``) of every ``Secret`` value."""
    found: set[str] = set()
    if isinstance(node, Secret):
        found.add(prefix)
    elif isinstance(node, BaseModel):
        for name in type(node).model_fields:
            found |= secret_paths(getattr(node, name), f"{prefix}.{name}" if prefix else name)
    elif isinstance(node, list | tuple):
        for index, item in enumerate(node):
            found |= secret_paths(item, f"{prefix}[{index}]")
    elif isinstance(node, Mapping):
        for key, item in node.items():
            found |= secret_paths(item, f"{prefix}.{key}" if prefix else str(key))
    return found


def public_view(config: ClgwdConfig) -> dict[str, Any]:
    """The effective config as JSON with every set ``Secret`` replaced by ``"set"``."""
    data: dict[str, Any] = config.model_dump(mode="json")
    for path in secret_paths(config):
        _replace(data, path, SECRET_MARKER)
    return data


def _replace(data: Any, path: str, value: Any) -> None:
    parts = _split(path)
    for part in parts[:-1]:
        data = data[part]
    data[parts[-1]] = value


def _split(path: str) -> list[str | int]:
    out: list[str | int] = []
    for dotted in path.split("."):
        name, *indexes = dotted.split("[")
        if name:
            out.append(name)
        out.extend(int(i.rstrip("]")) for i in indexes)
    return out


def merge_patch(target: Any, patch: Any, depth: int = 0) -> Any:
    """RFC 7396: objects merge, ``null`` deletes, anything else replaces."""
    if depth > MAX_PATCH_DEPTH:
        raise InvalidConfigPatch(f"patch: nested deeper than {MAX_PATCH_DEPTH} levels")
    if not isinstance(patch, Mapping):
        return patch
    out = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value, depth + 1)
    return out


def _get(config: Any, path: str) -> Any:
    for part in path.split("."):
        config = getattr(config, part)
    return config


def check_patch(old: ClgwdConfig, document: Mapping[str, Any],
                patch: Mapping[str, Any]) -> tuple[dict[str, Any], ClgwdConfig]:
    """The patched document and its validated config; refuses invalid or forbidden
    changes with errors naming the key path."""
    merged = merge_patch(document, patch)
    try:
        new = ClgwdConfig.model_validate(merged)
    except ValidationError as err:
        issues = render_validation_error(err)
        raise InvalidConfigPatch("; ".join(str(i) for i in issues)) from None
    forbidden = [p for p in REMOTE_FORBIDDEN if _get(old, p) != _get(new, p)]
    if forbidden:
        raise ForbiddenConfigKey(f"{', '.join(forbidden)}: may not be changed remotely; "
                                 "change it in the config file on the gateway")
    for path in sorted(secret_paths(new)):
        if _patched_value(patch, path) == SECRET_MARKER:
            raise InvalidConfigPatch(f"{path}: {SECRET_MARKER!r} is config.get's marker for "
                                     "a set secret; leave the key out to keep the secret")
    return merged, new


def _patched_value(patch: Any, path: str) -> Any:
    for part in _split(path):
        in_list = isinstance(part, int) and isinstance(patch, list) and part < len(patch)
        if not (in_list or (isinstance(patch, Mapping) and part in patch)):
            return None
        patch = patch[part]
    return patch


def changed_paths(old: ClgwdConfig, new: ClgwdConfig) -> list[str]:
    """Top-level-section-and-key paths whose values differ (for history)."""
    out: list[str] = []
    for section in type(old).model_fields:
        a, b = getattr(old, section), getattr(new, section)
        if a == b:
            continue
        if isinstance(a, BaseModel):
            out.extend(f"{section}.{k}" for k in type(a).model_fields
                       if getattr(a, k) != getattr(b, k))
        else:
            out.append(section)
    return out


def read_document(path: Path) -> dict[str, Any]:
    """The config file's YAML mapping (blocking)."""
    return parse_yaml(path.read_text(encoding="utf-8"), str(path))


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + ".bak")


def write_atomically(path: Path, document: Mapping[str, Any]) -> None:
    """Keep ``<file>.bak``, then replace the file in one rename with the same mode and
    owner (blocking). A crash leaves the old or the new file, never half of one."""
    text = "# Written by clgwd config.set; the previous version is in "
    text += f"{backup_path(path).name}\n" + yaml.safe_dump(dict(document), sort_keys=False,
                                                           allow_unicode=True)
    shutil.copy2(path, backup_path(path))
    _replace_file(path, text.encode(), os.stat(path))


def restore_backup(path: Path) -> None:
    """Put ``<file>.bak`` back in place (blocking)."""
    _replace_file(path, backup_path(path).read_bytes(), os.stat(path))


def _replace_file(path: Path, data: bytes, like: os.stat_result) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            os.fchmod(out.fileno(), like.st_mode & 0o7777)
            with contextlib.suppress(PermissionError):
                os.fchown(out.fileno(), like.st_uid, like.st_gid)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
