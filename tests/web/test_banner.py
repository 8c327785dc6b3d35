"""The console banner shows the onboarding part's setup-code hint and certificate
fingerprint, through the hook ``build_components`` wires (never the code itself)."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import ssl

import aiohttp
import pytest
from cryptography import x509

from clgwd.net.advertiser import MdnsAdvertiser
from clgwd.web.tls import fingerprint_of
from tests.web.conftest import Gateway, setup_admin


def _banner(gw: Gateway, caplog: pytest.LogCaptureFixture) -> str:
    """Print the banner the way mDNS does after publishing, and return it."""
    mdns = gw.daemon.component("mdns")
    assert isinstance(mdns, MdnsAdvertiser)
    hook = mdns._on_published  # the hook build_components wired
    assert hook is not None
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="clgwd.banner"):
        hook("cloudlink", [ipaddress.IPv4Address("192.0.2.10")])
    return "\n".join(r.getMessage() for r in caplog.records if r.name == "clgwd.banner")


async def _served_fingerprint(gw: Gateway) -> str:
    """The SHA-256 fingerprint of the certificate the HTTPS listener really serves."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    port = gw.http.https_port()
    assert port is not None
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        assert isinstance(ssl_object, ssl.SSLObject)
        der = ssl_object.getpeercert(binary_form=True)
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError):
            await writer.wait_closed()
    assert der is not None
    return fingerprint_of(x509.load_der_x509_certificate(der))


async def test_banner_has_fingerprint_and_setup_code_hint(
        gateway: Gateway, client: aiohttp.ClientSession,
        caplog: pytest.LogCaptureFixture) -> None:
    """Before the first visit the banner says how to read the setup code (not the code)
    and shows the served certificate's fingerprint; once the admin password is set, the
    hint says the code is no longer needed."""
    text = _banner(gateway, caplog)
    fingerprint = await _served_fingerprint(gateway)
    assert f"Certificate fingerprint (SHA-256): {fingerprint}" in text
    assert "Setup code: run `sudo clgwd setup-code`" in text
    assert gateway.setup_code not in text
    assert gateway.setup_code.replace("-", "") not in text
    assert "not available yet" not in text

    await setup_admin(client, gateway)
    text = _banner(gateway, caplog)
    assert "Setup code: not needed, the admin password is set" in text
    assert fingerprint in text
