"""Enrollment: trade an Account ID + one-time token and a CSR for a client certificate.

Mirrors the vendor flow ("Account ID + Token"): the technician types both into the
onboarding page or ``clgwd enroll``; the gateway posts a CSR for its own key to
``<cloud>/v1/enroll`` over verified HTTPS (system trust store, or
``cloud.enrollment_ca_file``); the cloud answers with a short-lived certificate and the
CA that the link pins from then on, plus (optionally) the public key of its tunnel
authority, which the tunnel component uses unless ``tunnel.authority_public_key`` is
set. The token is a ``Secret`` and never logged.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import ssl
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp

from clgwd.config import Secret
from clgwd.config.proxy import ProxyTarget
from clgwd.errors import ClgwdError
from clgwd.link.identity import Enrollment, IdentityFiles
from clgwd.link.proxy import aiohttp_proxy, refusal
from clgwd.protocol.rpc import ENROLL_PATH

_LOGGER = logging.getLogger(__name__)
ENROLL_TIMEOUT: Final = 30.0
TUNNEL_AUTHORITY_FIELD: Final = "tunnel_authority_key"
"""Enrollment answer field: the key that signs tunnel stream tickets (protocol.md §2)."""
RELEASE_KEY_FIELD: Final = "release_key"
"""Enrollment answer field: the key that signs release bundles (docs/updates.md)."""


class EnrollmentRejected(ClgwdError):
    """The cloud refused the Account ID / token (wrong, expired or already used)."""

    code = "enrollment_rejected"
    http_status = 403


class EnrollmentFailed(ClgwdError):
    """The cloud could not be reached or answered something unusable."""

    code = "enrollment_failed"
    http_status = 502


class EnrollmentUnreachable(EnrollmentFailed):
    """Nothing answers at the cloud address (refused, no route, name unknown)."""

    code = "cloud_unreachable"


class EnrollmentUntrusted(EnrollmentFailed):
    """The cloud's TLS certificate does not verify against the CA in use."""

    code = "cloud_untrusted"


def _enroll_ssl_context(ca_file: Path | None, ca_pem: str | None = None) -> ssl.SSLContext:
    if ca_pem is not None:
        return ssl.create_default_context(cadata=ca_pem)
    if ca_file is None:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=str(ca_file))


async def enroll(state_dir: Path, cloud_url: str, account_id: str, token: Secret,
                 enrollment_ca_file: Path | None = None, *,
                 proxy: ProxyTarget | None = None, ca_pem: str | None = None) -> Enrollment:
    """Enroll this gateway; on success the identity files hold the new certificate.
    ``proxy``: the HTTP proxy in force (``clgwd.link.proxy``), None = direct.
    ``ca_pem``: the CA saved or pasted at the gateway, instead of the CA file."""
    files = IdentityFiles(state_dir)
    csr_pem = await asyncio.to_thread(files.make_csr)
    gateway_id = await asyncio.to_thread(files.ensure_key_and_id)
    ctx = await asyncio.to_thread(_enroll_ssl_context, enrollment_ca_file, ca_pem)
    body = {"account_id": account_id, "token": token.reveal(), "gateway_id": gateway_id,
            "csr": csr_pem}
    answer = await _post(cloud_url + ENROLL_PATH, body, ctx, proxy)
    cert, ca = answer.get("certificate"), answer.get("ca")
    if not isinstance(cert, str) or not isinstance(ca, str):
        raise EnrollmentFailed("the cloud's enrollment answer lacks certificate or ca")
    tunnel_key = _tunnel_authority_key(answer.get(TUNNEL_AUTHORITY_FIELD))
    release_key = _ed25519_b64(answer.get(RELEASE_KEY_FIELD), RELEASE_KEY_FIELD)
    enrollment = await asyncio.to_thread(files.store_certificate, cert, ca, account_id,
                                         cloud_url, tunnel_key, release_key)
    _LOGGER.info("Enrolled as %s in account %s; certificate valid until %s",
                 enrollment.gateway_id, account_id, enrollment.not_after.isoformat())
    return enrollment


def _tunnel_authority_key(value: object) -> str:
    """The optional tunnel-authority public key: absent = "", else 32 raw bytes base64."""
    return _ed25519_b64(value, TUNNEL_AUTHORITY_FIELD)


def _ed25519_b64(value: object, field: str) -> str:
    """An optional Ed25519 public key: absent = "", else 32 raw bytes in base64."""
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            if len(base64.b64decode(value, validate=True)) == 32:
                return value
        except binascii.Error:
            pass
    raise EnrollmentFailed(f"the cloud's {field} is not the base64 of a "
                           "32-byte Ed25519 public key")


async def _post(url: str, body: dict[str, Any], ctx: ssl.SSLContext,
                proxy: ProxyTarget | None) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=ENROLL_TIMEOUT)
    via = aiohttp_proxy(proxy, url)
    try:
        async with (aiohttp.ClientSession(timeout=timeout, trust_env=False) as http,
                    http.post(url, json=body, ssl=ctx, **via) as resp):
            data = await _json_or_none(resp)
            if resp.status in (400, 401, 403, 404, 409):
                message = data.get("message") if isinstance(data, dict) else None
                raise EnrollmentRejected(
                    f"the cloud refused the enrollment (HTTP {resp.status}): "
                    f"{message or 'check the Account ID and token'}")
            if resp.status != 200 or not isinstance(data, dict):
                raise EnrollmentFailed(f"the cloud answered HTTP {resp.status} to enrollment")
            return data
    except aiohttp.ClientHttpProxyError as err:
        assert proxy is not None
        parts = urlsplit(url)
        raise EnrollmentFailed(str(refusal(proxy, parts.hostname or "", parts.port or 443,
                                       err.status, err.message))) from None
    except aiohttp.ClientProxyConnectionError as err:
        assert proxy is not None
        raise EnrollmentFailed(f"cannot reach the proxy {proxy.address} "
                               f"({err.os_error.strerror or err.os_error}); check the proxy "
                               "host and port") from None
    except aiohttp.ClientConnectorCertificateError as err:
        raise EnrollmentUntrusted(
            f"cannot verify the cloud's certificate at {_origin(url)} "
            f"({err.certificate_error}); check the cloud CA certificate: paste the CA "
            "that signed the cloud's certificate, or leave it empty for a cloud with a "
            "public certificate") from None
    except aiohttp.ClientConnectorSSLError as err:
        raise EnrollmentUntrusted(
            f"the TLS handshake with {_origin(url)} failed ({err.os_error}); check the "
            "cloud address and the cloud CA certificate") from None
    except aiohttp.ClientConnectorDNSError as err:
        raise EnrollmentUnreachable(
            f"the name {urlsplit(url).hostname} does not resolve "
            f"({err.os_error.strerror or err.os_error}); check the cloud address and the "
            "gateway's name servers") from None
    except aiohttp.ClientConnectorError as err:
        raise EnrollmentUnreachable(
            f"nothing answers at {_origin(url)} ({err.os_error.strerror or err.os_error}); "
            "check the cloud address and port, and that this network lets HTTPS out "
            "(the pre-flight checks on the Gateway step)") from None
    except (aiohttp.ClientError, TimeoutError) as err:
        raise EnrollmentFailed(f"cannot reach {url}: {type(err).__name__}: {err}") from None


def _origin(url: str) -> str:
    """``host:port`` of ``url`` (what the technician can check)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{f'[{host}]' if ':' in host else host}:{parts.port or 443}"


async def _json_or_none(resp: aiohttp.ClientResponse) -> Any:
    try:
        return await resp.json(content_type=None)
    except ValueError:
        return None
