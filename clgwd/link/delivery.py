"""Outbox delivery over one link connection: ``event.push`` batches, acknowledged by seq.

Records go in seq order, at most ``cloud.batch_size`` and ``PUSH_PAYLOAD_BUDGET`` bytes
per push. The cloud answers the highest seq it has stored; the gateway marks delivered
exactly that, and never more than it sent (``min(acked, last sent)``): a cloud that
acknowledges part of a batch gets the rest again, one that over-acknowledges cannot
make records vanish that never left.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from clgwd.config import ClgwdConfig
from clgwd.link.session import Session
from clgwd.metrics import Metrics
from clgwd.protocol import rpc as p
from clgwd.protocol.channel import LinkDown
from clgwd.protocol.rpc import RpcFailed
from clgwd.store import Store
from clgwd.tasks import wait_at_most

_LOGGER = logging.getLogger(__name__)

IDLE_PUSH_WAIT: Final = 5.0
PUSH_PAYLOAD_BUDGET: Final = p.MAX_MESSAGE_BYTES // 2
"""Payload bytes per ``event.push``: half the cloud's message limit leaves room for the
envelope and for JSON that grows when re-encoded (escapes, spacing)."""


class OutboxDelivery:
    """Pushes undelivered outbox records to the cloud while a connection is up."""

    def __init__(self, config: ClgwdConfig, store: Store, metrics: Metrics) -> None:
        self.config = config
        self._store = store
        self._records = metrics.counter("clgwd_link_records_delivered_total",
                                        "Outbox records acknowledged by the cloud")

    async def run(self, session: Session) -> None:
        """Send undelivered records in seq order; the cloud acks up to a seq."""
        try:
            while True:
                records = await self._store.outbox.pending(
                    0, self.config.cloud.batch_size, max_bytes=PUSH_PAYLOAD_BUDGET)
                if not records:
                    await self._wait_for_records()
                    continue
                body = [{"seq": r.seq, "kind": r.kind, "payload": r.payload,
                         "created_at": r.created_at} for r in records]
                result = await session.request(p.EVENT_PUSH, {"records": body},
                                               self.config.cloud.request_timeout)
                acked = min(int_member(result, "acked_seq", minimum=records[0].seq),
                            records[-1].seq)
                self._records.inc(await self._store.outbox.ack(acked))
        except LinkDown:
            return
        except (RpcFailed, TimeoutError, TypeError) as err:
            _LOGGER.warning("Outbox delivery failed (%s: %s); reconnecting",
                            type(err).__name__, err)
            await session.close(1011, "outbox delivery failed")

    async def _wait_for_records(self) -> None:
        await wait_at_most(self._store.outbox.wait_for_records(), IDLE_PUSH_WAIT)


def int_member(result: Any, name: str, minimum: int = 0) -> int:
    """``result[name]`` as an int >= ``minimum``; a TypeError names what was wrong."""
    value = result.get(name) if isinstance(result, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise TypeError(f"the cloud's answer has {name}={value!r}, expected an integer "
                        f">= {minimum}")
    return value
