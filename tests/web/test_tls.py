"""The device certificate: names, persistence, fingerprint."""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from clgwd.web.tls import (
    CERT_FILENAME,
    KEY_FILENAME,
    ensure_certificate,
    load_fingerprint,
    local_addresses,
)
from tests.web.conftest import Gateway


def test_local_addresses_include_loopback() -> None:
    assert "127.0.0.1" in local_addresses()


def test_certificate_names_and_persistence(tmp_path: Path) -> None:
    first = ensure_certificate(tmp_path, ["gw1.example.test"], ["0.0.0.0", "192.0.2.7"])
    cert = x509.load_pem_x509_certificate((tmp_path / CERT_FILENAME).read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = set(san.get_values_for_type(x509.DNSName))
    assert {"cloudlink.local", "gw1.example.test", socket.gethostname().lower()} <= dns
    ips = {str(i) for i in san.get_values_for_type(x509.IPAddress)}
    assert {"127.0.0.1", "::1", "192.0.2.7"} | set(local_addresses()) == ips
    assert "0.0.0.0" not in ips
    assert (tmp_path / KEY_FILENAME).stat().st_mode & 0o077 == 0
    again = ensure_certificate(tmp_path, ["gw1.example.test"], ["192.0.2.7"])
    assert again.fingerprint == first.fingerprint == load_fingerprint(tmp_path)
    renamed = ensure_certificate(tmp_path, ["gw2.example.test"], [])
    assert renamed.fingerprint != first.fingerprint


def test_damaged_certificate_is_made_again(tmp_path: Path) -> None:
    """A certificate or key left empty by a power cut (seen in the booted image) is
    replaced at the next start instead of stopping the daemon."""
    first = ensure_certificate(tmp_path, [], [])
    for damaged in (CERT_FILENAME, KEY_FILENAME):
        (tmp_path / damaged).write_bytes(b"")
        again = ensure_certificate(tmp_path, [], [])
        assert again.fingerprint != first.fingerprint
        assert again.fingerprint == load_fingerprint(tmp_path)
        first = again
    assert not list(tmp_path.glob("*.tmp"))


async def test_served_certificate_is_the_logged_one(gateway: Gateway) -> None:
    assert await _served_fingerprint(gateway) == gateway.http.fingerprint


async def _served_fingerprint(gateway: Gateway) -> str:
    port = gateway.http.https_port()
    assert port is not None
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    _reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                                   server_hostname="cloudlink.local")
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    await writer.wait_closed()
    return ":".join(f"{b:02X}" for b in x509.load_der_x509_certificate(der).fingerprint(
        hashes.SHA256()))


async def test_reload_with_a_new_name_remakes_the_served_certificate(gateway: Gateway) -> None:
    """A name added to http.names is in the certificate served after the reload."""
    before = gateway.http.fingerprint
    config = gateway.daemon.config
    new = config.model_copy(update={"http": config.http.model_copy(
        update={"names": ["gw9.example.test"]})})
    await gateway.http.apply_config(new)
    assert gateway.http.fingerprint != before
    assert await _served_fingerprint(gateway) == gateway.http.fingerprint
