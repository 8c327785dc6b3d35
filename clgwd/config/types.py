"""The building blocks of every config section: the strict base model and field types.

Sections (``models`` and one module per part's section) import these from here; this
module imports nothing of ours, so the config package has no import cycle.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


class StrictModel(BaseModel):
    """Base for every config model: immutable, unknown keys rejected, no type coercion."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _check_port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise ValueError("must be 1-65535")
    return value


def _check_listen_port(value: int) -> int:
    if not 0 <= value <= 65535:
        raise ValueError("must be 0-65535 (0 picks a free port)")
    return value


def _check_host(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError("must be an IPv4 or IPv6 address") from None
    return value


def _check_absolute(value: Path) -> Path:
    if not value.is_absolute():
        raise ValueError("must be an absolute path")
    return value


Port = Annotated[int, AfterValidator(_check_port)]
"""A TCP/UDP port number, 1-65535."""

ListenPort = Annotated[int, AfterValidator(_check_listen_port)]
"""A port to bind; 0 lets the kernel pick a free one (tests, demos)."""

IpAddressText = Annotated[str, AfterValidator(_check_host)]
"""An IPv4 or IPv6 address written as text (``0.0.0.0`` and ``::`` mean all)."""

AbsolutePath = Annotated[Path, Field(strict=False), AfterValidator(_check_absolute)]
"""A filesystem path that must be absolute (relative paths depend on the CWD)."""

Seconds = Annotated[float, Field(gt=0, strict=False)]
"""A positive duration in seconds; integers are accepted."""


def _check_host_name(value: str) -> str:
    labels = value.rstrip(".").split(".")
    if not value or len(value) > 253 or not all(
            label and len(label) <= 63 and label.replace("-", "").isalnum()
            and label.isascii() and not label.startswith("-") for label in labels):
        raise ValueError("must be a DNS host name such as gw1.example.com")
    return value.rstrip(".").lower()


HostName = Annotated[str, AfterValidator(_check_host_name)]
"""A DNS name the gateway answers to (compared case-insensitively)."""
