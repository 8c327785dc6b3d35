"""The cloud address typed at the gateway: validated, saved after a good enrollment.

A stock appliance's config file sets no ``cloud.url``; the technician types the
address (and, for a cloud with a private CA, pastes its CA certificate) on the
onboarding page's Cloud step, or gives ``clgwd enroll --cloud-url/--cloud-ca``. The
address is checked exactly like the file's ``cloud.url`` (``check_cloud_url``), the CA
must parse as X.509 certificates, and both are stored in the state DB (setting
``cloud.address``) only once the cloud has accepted the enrollment: a failed attempt
leaves the address in force untouched. Which address is in force (saved over file) is
``clgwd.config.cloud.with_saved_address``; ``clgwd.settings`` reports it. Only someone
at the gateway may set it: ``cloud.enroll`` and ``cloud.address.forget`` are refused to
the cloud (``clgwd.commands.CLOUD_REFUSED``), which must not be able to redirect the
gateway to another cloud.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from clgwd.config.cloud import (
    ADDRESS_SETTING,
    CloudConfig,
    SavedCloudAddress,
    check_cloud_url,
    saved_cloud_address,
    with_saved_address,
)
from clgwd.errors import ClgwdError
from clgwd.link.local import CloudNotConfigured
from clgwd.store import Store
from clgwd.store.db import Transaction

CA_PEM_MAX: Final = 32 << 10
"""Longest CA text accepted (a CA certificate is 1-3 KiB of PEM; a chain a few; the
page's request body is at most 64 KiB)."""
URL_PARAM: Final = "cloud_url"
CA_PARAM: Final = "cloud_ca_pem"


class InvalidCloudUrl(ClgwdError):
    """The typed cloud address is not one the link can use; nothing was sent."""

    code = "invalid_cloud_url"
    http_status = 422


class InvalidCloudCa(ClgwdError):
    """The pasted CA is not PEM certificates; nothing was sent."""

    code = "invalid_cloud_ca"
    http_status = 422


@dataclass(frozen=True)
class AddressRequest:
    """What ``cloud.enroll`` was given besides the Account ID and token (None: not
    given, the address / CA in force applies)."""

    url: str | None = None
    ca_pem: str | None = None


def cloud_url_param(value: object) -> str:
    """A typed cloud address (surrounding spaces ignored), as ``check_cloud_url``."""
    if not isinstance(value, str):
        raise InvalidCloudUrl("cloud_url: must be text, e.g. https://cloud.example.com")
    text = value.strip()
    if not text:
        raise InvalidCloudUrl("cloud_url: enter the cloud's address, e.g. "
                              "https://cloud.example.com")
    try:
        return check_cloud_url(text)
    except ValueError as err:
        raise InvalidCloudUrl(f"cloud_url: {err}") from None


def ca_pem_param(value: object) -> str:
    """PEM text of one or more X.509 certificates (the CA of a private cloud)."""
    if not isinstance(value, str):
        raise InvalidCloudCa("cloud_ca_pem: must be text (PEM)")
    text = value.strip()
    if len(text) > CA_PEM_MAX:
        raise InvalidCloudCa(f"cloud_ca_pem: must be at most {CA_PEM_MAX // 1024} KiB of "
                             "PEM text")
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise InvalidCloudCa("cloud_ca_pem: is not a certificate in PEM form (it must "
                             "start with -----BEGIN CERTIFICATE-----); a private key or "
                             "a certificate request is not accepted")
    try:
        certificates = x509.load_pem_x509_certificates(text.encode())
    except ValueError:
        raise InvalidCloudCa("cloud_ca_pem: the certificate text is damaged (copy the "
                             "whole block, from -----BEGIN CERTIFICATE----- to -----END "
                             "CERTIFICATE-----)") from None
    try:  # what the TLS library will be given must load there too
        ssl.create_default_context(cadata=text)
    except ssl.SSLError as err:
        raise InvalidCloudCa(f"cloud_ca_pem: the certificate cannot be used for TLS "
                             f"({err.reason or err})") from None
    return "".join(c.public_bytes(Encoding.PEM).decode("ascii") for c in certificates)


def address_params(params: Mapping[str, Any]) -> AddressRequest:
    """The optional ``cloud_url`` and ``cloud_ca_pem`` of ``cloud.enroll``; null or
    empty = not given."""
    url, ca = params.get(URL_PARAM), params.get(CA_PARAM)
    return AddressRequest(
        url=None if url is None else cloud_url_param(url),
        ca_pem=None if ca is None or (isinstance(ca, str) and not ca.strip())
        else ca_pem_param(ca))


def ca_file_text(path: Path) -> str:
    """``clgwd enroll --cloud-ca FILE``: the file's text, checked (blocking: a thread)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InvalidCloudCa(f"{path}: is not a PEM text file (a DER file? convert it with "
                             "openssl x509 -inform der)") from None
    return ca_pem_param(text)


@dataclass(frozen=True)
class Plan:
    """What one enrollment uses: the address, the CA to verify it with (PEM, else a
    file, else the system trust store), and whether a success saves the address."""

    url: str
    ca_pem: str | None
    ca_file: Path | None
    save: bool


def plan(request: AddressRequest, saved: SavedCloudAddress | None,
         file_cloud: CloudConfig) -> Plan:
    """Decide an enrollment from what was typed, what was saved and the file.

    Address: the typed one, else the one in force (saved over file). CA: the one pasted
    now, else the one saved with that address, else the file's ``enrollment_ca_file``
    while the address is the file's, else the system trust store. A typed address or
    CA is saved after a success unless it is exactly what is in force already (so a
    gateway whose file sets ``cloud.url`` keeps reporting ``file`` when the technician
    enrolls with the prefilled address)."""
    url = request.url or with_saved_address(file_cloud, saved).url
    if url is None:
        raise CloudNotConfigured(
            "no cloud address is set: type it on the onboarding page's Cloud step "
            "(cloud_url), give clgwd enroll --cloud-url, or set cloud.url in the "
            "gateway's config file")
    ca_pem, ca_file = request.ca_pem, None
    if ca_pem is None and saved is not None and saved.url == url:
        ca_pem = saved.ca_pem
    if ca_pem is None and url == file_cloud.url:
        ca_file = file_cloud.enrollment_ca_file
    in_force = (saved.url, saved.ca_pem) if saved is not None else (file_cloud.url, None)
    typed = request.url is not None or request.ca_pem is not None
    return Plan(url, ca_pem, ca_file, typed and (url, ca_pem) != in_force)


# -- storage -----------------------------------------------------------------------------------


async def load_saved(store: Store) -> SavedCloudAddress | None:
    """The saved address; ValueError when the stored row no longer validates."""
    return saved_cloud_address(await store.settings.get(ADDRESS_SETTING))


async def save_in(tx: Transaction, store: Store, url: str, ca_pem: str | None,
                  actor: str) -> SavedCloudAddress:
    """Store the address (and CA) inside the caller's transaction."""
    saved = SavedCloudAddress(url, ca_pem, actor, time.time())
    await store.settings.set_in(tx, ADDRESS_SETTING, saved.as_json())
    return saved


async def forget_in(tx: Transaction, store: Store) -> None:
    await store.settings.delete_in(tx, ADDRESS_SETTING)
