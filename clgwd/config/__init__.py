"""Configuration: strict YAML loading and validated, frozen models.

Use ``load_config(path)`` (blocking: call it through ``asyncio.to_thread`` on the loop)
or ``parse_config(text)``. Both raise ``ConfigError`` listing every problem with its key
path.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from clgwd.config.loader import ConfigError, ConfigIssue, parse_yaml, render_validation_error
from clgwd.config.models import (
    DEFAULT_CONFIG_PATH,
    ClgwdConfig,
)
from clgwd.config.secret import Secret

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "ClgwdConfig",
    "ConfigError",
    "ConfigIssue",
    "Secret",
    "load_config",
    "parse_config",
]


def parse_config(text: str, source: str = "<config>") -> ClgwdConfig:
    """Parse and validate a YAML config document."""
    data = parse_yaml(text, source)
    try:
        return ClgwdConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(source, render_validation_error(err)) from None


def load_config(path: Path) -> ClgwdConfig:
    """Read, parse and validate the config file at ``path`` (blocking I/O)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(str(path), [ConfigIssue("", "file not found")]) from None
    except PermissionError:
        raise ConfigError(str(path), [ConfigIssue("", "permission denied")]) from None
    except IsADirectoryError:
        raise ConfigError(str(path), [ConfigIssue("", "is a directory, not a file")]) from None
    except UnicodeDecodeError as err:
        raise ConfigError(str(path), [ConfigIssue("", f"not valid UTF-8 ({err.reason})")]) from None
    except OSError as err:
        raise ConfigError(str(path), [ConfigIssue("", f"cannot read: {err.strerror}")]) from None
    return parse_config(text, str(path))
