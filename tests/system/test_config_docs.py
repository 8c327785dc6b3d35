"""docs/config-system.md: its example parses and its table matches the defaults."""

from __future__ import annotations

import re
from pathlib import Path

from clgwd.config import parse_config
from clgwd.config.system import SystemConfig
from clgwd.system.configedit import REMOTE_FORBIDDEN

DOC = Path(__file__).parents[2] / "docs" / "config-system.md"


def test_documented_example_is_the_defaults() -> None:
    """The YAML block (with update_command commented out) is exactly the defaults."""
    block = re.search(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert block is not None
    assert parse_config(block.group(1)).system == SystemConfig()


def test_every_system_key_and_forbidden_key_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    for key in SystemConfig.model_fields:
        assert f"| `{key}` |" in text, key
    for key in REMOTE_FORBIDDEN:
        assert f"`{key}`" in text, key
