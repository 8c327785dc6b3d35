"""Certificate renewal over the link: ``cert.renew`` at 2/3 of the certificate's lifetime.

The deadline is decided once per certificate (``identity.renewal_deadline``); a failed
renewal is retried while the connection lasts, after delays of the one retry policy
(``clgwd.retry``: windows from ``RENEW_RETRY`` seconds up to ``RENEW_RETRY_CAP``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Final

from clgwd.config import ClgwdConfig
from clgwd.link.identity import Enrollment, IdentityError, IdentityFiles, renewal_deadline
from clgwd.link.session import Session
from clgwd.protocol import rpc as p
from clgwd.protocol.channel import LinkDown
from clgwd.protocol.rpc import RpcFailed
from clgwd.retry import Backoff

_LOGGER = logging.getLogger(__name__)

RENEW_RETRY: Final = 60.0
RENEW_RETRY_CAP: Final = 1800.0
RENEW_RETRY_FLOOR: Final = 10.0


class CertificateRenewal:
    """Renews the client certificate over the current connection when it is due."""

    def __init__(self, config: ClgwdConfig, files: IdentityFiles,
                 retry: Backoff | None = None) -> None:
        self.config = config
        self.files = files
        self.retry = retry or Backoff(RENEW_RETRY, RENEW_RETRY_CAP)
        self._plan: tuple[dt.datetime | None, dt.datetime] = (None, dt.datetime.now(dt.UTC))

    async def run(self, session: Session) -> None:
        """Renew the client certificate over the link at 2/3 of its lifetime."""
        while True:
            enrollment = await asyncio.to_thread(self.files.load)
            if enrollment is None:
                return
            wait = (self.deadline(enrollment) - dt.datetime.now(dt.UTC)).total_seconds()
            if wait > 0:
                await asyncio.sleep(min(wait, 3600.0))
                continue
            try:
                await self._renew_once(session, enrollment)
            except LinkDown:
                return
            except (RpcFailed, TimeoutError, TypeError, IdentityError) as err:
                delay = self.retry.next_delay(RENEW_RETRY_FLOOR)
                _LOGGER.warning("Certificate renewal failed (%s); retrying in %.0f s",
                                err, delay)
                await asyncio.sleep(delay)
            else:
                self.retry.reset()

    def deadline(self, enrollment: Enrollment) -> dt.datetime:
        """``renewal_deadline``, decided once per certificate (when first seen)."""
        if self._plan[0] != enrollment.not_after:
            deadline = renewal_deadline(enrollment, dt.datetime.now(dt.UTC))
            self._plan = (enrollment.not_after, deadline)
        return self._plan[1]

    async def _renew_once(self, session: Session, enrollment: Enrollment) -> None:
        csr = await asyncio.to_thread(self.files.make_csr)
        result = await session.request(p.CERT_RENEW, {"csr": csr},
                                       self.config.cloud.request_timeout)
        cert = result.get("certificate") if isinstance(result, dict) else None
        ca = result.get("ca") if isinstance(result, dict) else None
        if not isinstance(cert, str) or not isinstance(ca, str):
            raise TypeError("cert.renew answer lacks certificate or ca")
        renewed = await asyncio.to_thread(self.files.store_certificate, cert, ca,
                                          enrollment.account_id, enrollment.cloud_url)
        _LOGGER.info("Client certificate renewed; valid until %s",
                     renewed.not_after.isoformat())
