"""The documented config example parses, and the pbx/sync defaults are what the docs say."""

from __future__ import annotations

import re
from pathlib import Path

from clgwd.config import parse_config

DOC = Path(__file__).parents[2] / "docs" / "config-pbx.md"


def test_documented_example_is_valid() -> None:
    """The YAML block in docs/config-pbx.md is accepted as a whole (ldap.ca_file aside)."""
    block = re.search(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert block is not None
    config = parse_config(block.group(1))
    assert config.pbx.effective_port == 4308
    assert config.pbx.ldap.security == "starttls"
    assert config.sync.delete_after_absent_reads == 2


def test_empty_file_means_no_pbx_and_default_safety() -> None:
    config = parse_config("")
    assert config.pbx.type == "none"
    assert (config.sync.interval_minutes, config.sync.max_deletions_per_run,
            config.sync.max_missing_ratio, config.sync.delete_after_absent_reads,
            config.sync.allow_empty_read) == (20, 50, 0.2, 2, False)
