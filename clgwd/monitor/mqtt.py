"""Publishing to an MQTT broker, behind one module (aiomqtt 2.x is imported only here).

Topics (docs/monitoring.md): ``<prefix>/status`` (retained; the last will sets it to
offline), ``<prefix>/events`` (history events and alert changes, QoS 1, not retained).
A broker outage never blocks the daemon: events wait in a bounded queue (the oldest are
dropped and counted when it is full) and the status is re-derived after a reconnect.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import urlsplit

from clgwd.config.monitor import MqttConfig
from clgwd.retry import Backoff  # the project's one retry policy
from clgwd.tasks import wait_at_most

_LOGGER = logging.getLogger(__name__)

MAX_QUEUED_EVENTS: Final = 1000
CONNECT_TIMEOUT: Final = 10.0
BACKOFF_BASE: Final = 1.0
BACKOFF_CAP: Final = 60.0

_AUTH_REFUSED: Final = frozenset({4, 5, 134, 135})
"""CONNACK codes: MQTT 3.1.1 bad user name or password (4), not authorized (5); MQTT 5
bad user name or password (134), not authorized (135)."""

StatusSource = Callable[[], dict[str, Any]]
StateListener = Callable[[str, str], None]
"""Called with (state, message): ``connected``, ``connecting``, ``auth_failed``, ..."""


def _dumps(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode()


def _tls_context(config: MqttConfig) -> ssl.SSLContext | None:
    """Blocking (reads the CA file): call through ``asyncio.to_thread``."""
    if urlsplit(config.url or "").scheme != "mqtts":
        return None
    return ssl.create_default_context(
        cafile=str(config.ca_file) if config.ca_file is not None else None)


class MqttPublisher:
    """Keeps one broker connection while ``run()`` runs; reconnects with backoff."""

    def __init__(self, config: MqttConfig, prefix: str, status: StatusSource,
                 on_state: StateListener, client_id: str) -> None:
        self.config = config
        self.prefix = prefix
        self.status_topic = f"{prefix}/status"
        self.events_topic = f"{prefix}/events"
        self._status = status
        self._on_state = on_state
        self._client_id = client_id
        self._events: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=MAX_QUEUED_EVENTS)
        self._wake = asyncio.Event()
        self.dropped_events = 0
        self.published = 0
        self.connected = False
        self._client: Any = None

    def publish_event(self, payload: dict[str, Any]) -> None:
        """Queue an event for ``<prefix>/events`` (never blocks; drops the oldest)."""
        if len(self._events) == self._events.maxlen:
            self.dropped_events += 1
        self._events.append(payload)
        self._wake.set()

    def status_changed(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        import aiomqtt  # noqa: PLC0415 - loaded when MQTT is configured

        parts = urlsplit(self.config.url or "")
        try:
            tls = await asyncio.to_thread(_tls_context, self.config)
        except (OSError, ssl.SSLError) as err:
            message = f"monitor.mqtt.ca_file: cannot load {self.config.ca_file}: {err}"
            _LOGGER.error("MQTT off: %s", message)  # noqa: TRY400 - expected, no traceback
            self._on_state("config_error", message)
            return
        port = parts.port or (8883 if tls is not None else 1883)
        backoff = Backoff(BACKOFF_BASE, BACKOFF_CAP)
        password = self.config.password.reveal() if self.config.password else None
        failures = 0
        while True:
            self._on_state("connecting", f"connecting to {parts.hostname}:{port}")
            client = aiomqtt.Client(
                hostname=parts.hostname or "", port=port, username=self.config.username or None,
                password=password, identifier=self._client_id, tls_context=tls,
                keepalive=self.config.keepalive, timeout=CONNECT_TIMEOUT,
                will=aiomqtt.Will(self.status_topic, _dumps(
                    {"state": "offline", "reason": "connection lost"}), qos=1, retain=True))
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    await client.__aenter__()
            except (aiomqtt.MqttError, TimeoutError, OSError) as err:
                failures += 1
                self._report_failure(err, failures, parts.hostname, port)
                await asyncio.sleep(backoff.next_delay())
                continue
            self._client = client
            try:
                self.connected = True
                if failures:
                    _LOGGER.info("MQTT broker %s:%s reachable again", parts.hostname, port)
                failures = 0
                backoff.reset()
                self._on_state("connected", f"publishing to {parts.hostname}:{port}")
                await self._publish_loop(client)
            except asyncio.CancelledError:
                await _say_offline(client, self.status_topic)
                raise
            except aiomqtt.MqttError as err:
                failures += 1
                self._report_failure(err, failures, parts.hostname, port)
            finally:
                self.connected = False
                self._client = None
                await _close(client)
            await asyncio.sleep(backoff.next_delay())

    def _report_failure(self, err: BaseException, failures: int, host: str | None,
                        port: int) -> None:
        text = str(err) or type(err).__name__
        rc = getattr(err, "rc", None)
        code = getattr(rc, "value", rc)
        auth = code in _AUTH_REFUSED or "not authori" in text.lower()
        state = "auth_failed" if auth else "unreachable"
        message = (f"the broker {host}:{port} refused the user name or password" if auth
                   else f"broker {host}:{port}: {text}")
        level = logging.WARNING if failures == 1 else logging.DEBUG
        _LOGGER.log(level, "MQTT: %s (%s)", message, type(err).__name__)
        self._on_state(state, message)

    async def _publish_loop(self, client: Any) -> None:
        await self._publish_status(client)
        next_status = time.monotonic() + self.config.status_interval
        while True:
            while self._events:
                payload = self._events[0]
                await client.publish(self.events_topic, _dumps(payload), qos=1)
                self._events.popleft()  # only after the broker took it
                self.published += 1
            await wait_at_most(self._wake.wait(), max(0.0, next_status - time.monotonic()))
            self._wake.clear()
            if self._events:
                continue
            await self._publish_status(client)
            next_status = time.monotonic() + self.config.status_interval

    async def _publish_status(self, client: Any) -> None:
        payload = {"state": "online", "at": time.time(), **self._status()}
        await client.publish(self.status_topic, _dumps(payload), qos=1, retain=True)
        self.published += 1


async def _say_offline(client: Any, topic: str) -> None:
    """On an orderly stop, say offline ourselves (the last will is for crashes)."""
    try:
        async with asyncio.timeout(2.0):
            await client.publish(topic, _dumps(
                {"state": "offline", "reason": "stopped", "at": time.time()}),
                qos=1, retain=True)
    except Exception as err:
        _LOGGER.debug("MQTT: could not publish offline at stop: %s", err)


async def _close(client: Any) -> None:
    try:
        async with asyncio.timeout(2.0):
            await client.__aexit__(None, None, None)
    except Exception as err:
        _LOGGER.debug("MQTT: disconnect: %s (%s)", err, type(err).__name__)
