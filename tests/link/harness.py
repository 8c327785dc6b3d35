"""Test harness: a real refcloud and a real gateway link (Store + CloudLink) on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from clgwd.commands import CommandRouter
from clgwd.component import ComponentStatus
from clgwd.config import ClgwdConfig, Secret, parse_config
from clgwd.link.component import CloudLink
from clgwd.link.connection import LinkState
from clgwd.link.enroll import enroll
from clgwd.refcloud.server import RefCloud
from clgwd.store import Store

FAST_LINK: dict[str, Any] = {"backoff_base": 0.05, "backoff_cap": 0.4, "open_timeout": 2,
                             "request_timeout": 5, "status_interval": 3600,
                             "drain_timeout": 2}


def gateway_config(tmp: Path, cloud_url: str | None, ca_file: Path | None,
                   **overrides: Any) -> ClgwdConfig:
    """A gateway config with fast link timings; ``overrides`` replace cloud keys."""
    cloud: dict[str, Any] = {**FAST_LINK, **overrides}
    if cloud_url:
        cloud["url"] = cloud_url
    if ca_file:
        cloud["enrollment_ca_file"] = str(ca_file)
    state = tmp / "gw-state"
    state.mkdir(parents=True, exist_ok=True)
    return parse_config(json.dumps({"state": {"dir": str(state)}, "cloud": cloud}))


async def wait_for(predicate: Callable[[], bool | Awaitable[bool]], limit: float = 20.0,
                   what: str = "condition") -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = predicate()
        if not isinstance(value, bool):
            value = await value
        if value:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {limit} s waiting for {what}")


@dataclass
class Gateway:
    config: ClgwdConfig
    store: Store
    commands: CommandRouter
    link: CloudLink
    traffic: list[tuple[str, str]] = field(default_factory=list)

    async def online(self, limit: float = 20.0) -> None:
        await wait_for(lambda: self.link.state == LinkState.ONLINE, limit, "link online")

    async def enqueue(self, kind: str, payload: dict[str, Any],
                      coalesce_key: str | None = None) -> int:
        async with self.store.db.transaction() as tx:
            return await self.store.outbox.enqueue(tx, kind, payload,
                                                   coalesce_key=coalesce_key)


@contextlib.asynccontextmanager
async def running_gateway(config: ClgwdConfig,
                          setup: Callable[[Gateway], None] | None = None
                          ) -> AsyncIterator[Gateway]:
    """Store + CloudLink of one gateway, the link's loops running in a task group."""
    commands = CommandRouter()
    statuses: dict[str, ComponentStatus] = {}
    async with Store(config) as store:
        link = CloudLink(config, store, commands, lambda: statuses)
        gw = Gateway(config, store, commands, link)
        link.tap = lambda d, t: gw.traffic.append((d, t))
        if setup is not None:
            setup(gw)
        async with link:
            statuses["link"] = link.tracker.current
            task = asyncio.create_task(link.run(), name="test-link")
            try:
                yield gw
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def enroll_gateway(config: ClgwdConfig, cloud: RefCloud, account: str = "acme") -> None:
    token = await cloud.create_token(account)
    assert config.cloud.url is not None
    await enroll(config.state.dir, config.cloud.url, account, Secret(token),
                 config.cloud.enrollment_ca_file)


@contextlib.asynccontextmanager
async def refcloud(directory: Path, port: int = 0, **kwargs: Any) -> AsyncIterator[RefCloud]:
    async with RefCloud(directory, port=port, **kwargs) as cloud:
        yield cloud


def other_ca_pem() -> str:
    """A self-signed CA that did not sign the reference cloud's certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Some other CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()
