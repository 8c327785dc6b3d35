"""Fixtures shared by the sync component's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from clgwd.store import Store
from tests.sync.helpers import config


@pytest.fixture
async def store(state_dir: Path) -> AsyncIterator[Store]:
    """An open state store in the test's state dir."""
    async with Store(config(state_dir)) as opened:
        yield opened
