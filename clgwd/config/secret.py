"""A string wrapper that never shows its value in repr, str, logs or JSON dumps.

Secrets are redacted by type, not by hope: any code path that formats a ``Secret``
(logging, f-strings, pydantic ``model_dump``) gets ``***``. Only ``reveal()`` returns
the plaintext, which makes every place that really needs it easy to grep for.
"""

from __future__ import annotations

import threading
from typing import Any, Final

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

REDACTED: Final = "***"
_MIN_SCRUB_LENGTH: Final = 4

_known_lock = threading.Lock()
_known_values: set[str] = set()


def known_secret_values() -> frozenset[str]:
    """Plaintexts of every Secret created in this process, for the log scrubber."""
    with _known_lock:
        return frozenset(_known_values)


class Secret:
    """An opaque secret value (passwords, tokens, keys)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Secret value must be a string")
        self._value = value
        if len(value) >= _MIN_SCRUB_LENGTH:
            with _known_lock:
                _known_values.add(value)

    def reveal(self) -> str:
        """Return the plaintext. Call only where the value is really sent or stored."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, format_spec: str) -> str:
        return REDACTED

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return self._value == other._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source_type: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            _validate_secret,
            json_schema_input_schema=core_schema.str_schema(),
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda _value: REDACTED, when_used="always"
            ),
        )


def _validate_secret(value: object) -> Secret:
    if isinstance(value, Secret):
        return value
    if isinstance(value, str):
        return Secret(value)
    raise ValueError("must be a string")
