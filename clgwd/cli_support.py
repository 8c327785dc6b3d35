"""Small helpers for console output shared by CLI commands."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def print_banner(lines: Sequence[str]) -> None:
    """Print a framed block so URLs stand out in a terminal or the journal."""
    width = max(len(line) for line in lines)
    rule = "=" * (width + 4)
    print(rule, file=sys.stdout)
    for line in lines:
        print(f"| {line:<{width}} |", file=sys.stdout)
    print(rule, file=sys.stdout, flush=True)
