"""Strict YAML loading and human-readable validation errors.

PyYAML silently keeps the last of two duplicate keys, and pydantic reports errors as
tuples. Operators need neither: a duplicate key is an error, and every validation error
is rendered as ``key.path[1].name: must be ..., got ...`` so it can be fixed in one go.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config document, located by its key path."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(Exception):
    """The config could not be read or is invalid; carries every issue found."""

    def __init__(self, source: str, issues: Sequence[ConfigIssue]) -> None:
        self.source = source
        self.issues = tuple(issues)
        super().__init__(self.render())

    def render(self) -> str:
        lines = [f"{self.source}: {len(self.issues)} error(s)"]
        lines.extend(f"  {issue}" for issue in self.issues)
        return "\n".join(lines)


class StrictSafeLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys instead of keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: dict[Hashable, yaml.Mark] = {}
        for key_node, _value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                first = seen[key]
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first defined on line {first.line + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, source: str) -> dict[str, Any]:
    """Parse one YAML document into a mapping; an empty document is an empty mapping."""
    try:
        data = yaml.load(text, Loader=StrictSafeLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        issue = ConfigIssue("", f"YAML error at {where}: {err.problem}")
        raise ConfigError(source, [issue]) from err
    except yaml.YAMLError as err:
        raise ConfigError(source, [ConfigIssue("", f"YAML error: {err}")]) from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            source, [ConfigIssue("", f"must be a mapping of keys, got {type(data).__name__}")]
        )
    return data


def format_location(loc: Iterable[int | str]) -> str:
    """Render a pydantic location tuple as ``ports[1].address``."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path


_TYPE_NAMES = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
    "path_type": "a path",
}


def describe_issue(error: ErrorDetails) -> str:
    """What one pydantic error expects, in words, without the rejected value (which may
    be a secret)."""
    return _describe(error)


def _describe(error: ErrorDetails) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind in _TYPE_NAMES:
        return f"must be {_TYPE_NAMES[kind]}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '?')}"
    if kind in {"greater_than_equal", "greater_than", "less_than_equal", "less_than"}:
        bound = next(iter(ctx.values()), "?")
        if isinstance(bound, float) and bound.is_integer():
            bound = int(bound)
        symbol = {"greater_than_equal": ">=", "greater_than": ">",
                  "less_than_equal": "<=", "less_than": "<"}[kind]
        return f"must be {symbol} {bound}"
    if kind in {"too_short", "string_too_short"}:
        unit = "item(s)" if kind == "too_short" else "character(s)"
        return f"must have at least {ctx.get('min_length', '?')} {unit}"
    if kind in {"too_long", "string_too_long"}:
        unit = "item(s)" if kind == "too_long" else "character(s)"
        return f"must have at most {ctx.get('max_length', '?')} {unit}"
    return error["msg"]


def render_validation_error(err: ValidationError) -> list[ConfigIssue]:
    """Turn a pydantic error into issues that name the key path and the expectation."""
    issues = []
    for error in err.errors(include_url=False):
        loc = [part for part in error["loc"] if not _is_union_tag(part)]
        message = _describe(error)
        if error["type"] != "missing" and not _is_sensitive(loc):
            message += f", got {_short_repr(error['input'])}"
        issues.append(ConfigIssue(format_location(loc), message))
    return issues


_SENSITIVE_WORDS = ("password", "token", "secret", "passphrase", "private_key", "community",
                    "auth_key", "priv_key")


def _is_sensitive(loc: Sequence[int | str]) -> bool:
    """Never echo the rejected value of a key that may hold a credential."""
    return any(
        isinstance(part, str) and any(word in part.lower() for word in _SENSITIVE_WORDS)
        for part in loc
    )


def _is_union_tag(part: int | str) -> bool:
    """Pydantic adds tagged-union and function names to locations; users never wrote them."""
    return isinstance(part, str) and (part.startswith("function-") or "[" in part)


def _short_repr(value: object) -> str:
    if isinstance(value, dict):
        return f"a mapping of {len(value)} key(s)"
    if isinstance(value, list):
        return f"a list of {len(value)} item(s)"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
