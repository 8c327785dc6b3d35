"""Shared helpers of the link benchmarks: a refcloud and a fleet of real gateway links.

Each simulated gateway is the production code path: its own state dir, ``Store``
(SQLite outbox) and ``CloudLink``, enrolled with its own key and certificate, talking
mTLS websockets to the reference cloud on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clgwd.commands import CommandRouter
from clgwd.config import ClgwdConfig, Secret, parse_config
from clgwd.link.component import CloudLink
from clgwd.link.connection import LinkState
from clgwd.link.enroll import enroll
from clgwd.refcloud.server import RefCloud
from clgwd.store import Store


@dataclass
class Node:
    config: ClgwdConfig
    store: Store
    link: CloudLink
    attempts: list[float] = field(default_factory=list)


def node_config(state_dir: Path, cloud: RefCloud, **cloud_keys: Any) -> ClgwdConfig:
    state_dir.mkdir(parents=True, exist_ok=True)
    section = {"url": cloud.url, "enrollment_ca_file": str(cloud.ca_file),
               "status_interval": 3600, **cloud_keys}
    return parse_config(json.dumps({"state": {"dir": str(state_dir)}, "cloud": section}))


@contextlib.asynccontextmanager
async def fleet(base: Path, cloud: RefCloud, count: int,
                **cloud_keys: Any) -> AsyncIterator[list[Node]]:
    """``count`` enrolled, running gateway links."""
    token = await cloud.create_token("bench", uses=count)
    async with contextlib.AsyncExitStack() as stack:
        nodes: list[Node] = []
        for i in range(count):
            config = node_config(base / f"gw{i:04d}", cloud, **cloud_keys)
            assert config.cloud.url is not None
            await enroll(config.state.dir, config.cloud.url, "bench", Secret(token),
                         config.cloud.enrollment_ca_file)
            store = await stack.enter_async_context(Store(config))
            link = await stack.enter_async_context(
                CloudLink(config, store, CommandRouter(), dict))
            node = Node(config, store, link)
            link.on_attempt = lambda n=node: n.attempts.append(time.monotonic())
            nodes.append(node)
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(n.link.run(), name=f"bench-link-{i}")
                     for i, n in enumerate(nodes)]
            try:
                yield nodes
            finally:
                for task in tasks:
                    task.cancel()


async def wait_online(nodes: list[Node], limit: float) -> dict[int, float]:
    """Monotonic time at which each node (by index) was first seen online."""
    seen: dict[int, float] = {}
    deadline = time.monotonic() + limit
    while len(seen) < len(nodes) and time.monotonic() < deadline:
        now = time.monotonic()
        for i, node in enumerate(nodes):
            if i not in seen and node.link.state == LinkState.ONLINE:
                seen[i] = now
        await asyncio.sleep(0.01)
    return seen


def quantiles(values: list[float]) -> str:
    if not values:
        return "n/a"
    ordered = sorted(values)
    p50 = statistics.median(ordered)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return f"p50 {p50:.2f} s, p90 {p90:.2f} s, max {ordered[-1]:.2f} s (n={len(ordered)})"


def quiet_logs() -> None:
    logging.basicConfig(level=logging.ERROR)
