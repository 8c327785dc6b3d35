"""Pure parts of the link: protocol parsing, the cloud config section."""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path

import pytest
from cryptography import x509
from hypothesis import given
from hypothesis import strategies as st

from clgwd.config import ConfigError, parse_config
from clgwd.link.connection import ws_url
from clgwd.link.identity import Enrollment, IdentityError, IdentityFiles, renewal_deadline
from clgwd.protocol import rpc as p


@given(st.text(max_size=200))
def test_parse_never_raises_anything_but_protocol_violation(text: str) -> None:
    """Arbitrary text either parses or raises ProtocolViolation with a JSON-RPC code."""
    try:
        p.parse(text)
    except p.ProtocolViolation as err:
        assert err.code in (p.PARSE_ERROR, p.INVALID_REQUEST, p.INVALID_PARAMS)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10)


@given(st.dictionaries(st.sampled_from(["jsonrpc", "id", "method", "params", "result",
                                        "error"]), json_values))
def test_parse_of_arbitrary_objects_is_total(body: dict[str, object]) -> None:
    """Any JSON object parses into a message or a ProtocolViolation, never a crash."""
    try:
        message = p.parse(json.dumps(body))
    except p.ProtocolViolation:
        return
    assert p.parse(p.encode(message)) == message


def test_encode_parse_round_trip() -> None:
    """Every message type survives encode -> parse unchanged."""
    messages: list[p.Message] = [
        p.Request(1, "hello", {"a": 1}), p.Notification("goaway", {}),
        p.Response("x", [1, 2]), p.error_response(None, p.PARSE_ERROR, "bad", "c"),
    ]
    for message in messages:
        assert p.parse(p.encode(message)) == message


def test_gateway_id_rules() -> None:
    assert p.is_valid_gateway_id("gw-" + "a" * 32)
    assert not p.is_valid_gateway_id("gw-" + "A" * 32)
    assert p.gateway_id_from_uri(p.CERT_URI_PREFIX + "gw-" + "0" * 32) == "gw-" + "0" * 32
    assert p.gateway_id_from_uri("urn:other:gw") is None


def test_cloud_config_defaults_and_errors() -> None:
    """An empty file works; bad values name the key path and say what is expected."""
    assert parse_config("").cloud.url is None
    config = parse_config("cloud: {url: 'https://cloud.example.com:8443/'}")
    assert config.cloud.url == "https://cloud.example.com:8443"
    assert ws_url(config.cloud.url) == "wss://cloud.example.com:8443/v1/gateway"
    with pytest.raises(ConfigError) as info:
        parse_config("cloud: {url: 'http://x', missed_pongs: 0, batch_size: '5'}")
    text = info.value.render()
    assert "cloud.url: must be an https:// URL" in text
    assert "cloud.missed_pongs" in text and "cloud.batch_size" in text
    with pytest.raises(ConfigError, match="backoff_cap must be >= backoff_base"):
        parse_config("cloud: {backoff_base: 10, backoff_cap: 5}")
    with pytest.raises(ConfigError, match="without a path"):
        parse_config("cloud: {url: 'https://x/v1'}")


def test_identity_key_is_private_and_csr_names_gateway(tmp_path: Path) -> None:
    """The key file is 0600, the id is stable, and the CSR carries the SAN URI."""
    files = IdentityFiles(tmp_path)
    gateway_id = files.ensure_key_and_id()
    assert files.ensure_key_and_id() == gateway_id
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    csr = x509.load_pem_x509_csr(files.make_csr().encode())
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == [
        p.CERT_URI_PREFIX + gateway_id]
    files.key.chmod(0o644)
    with pytest.raises(IdentityError, match="readable by others"):
        files.make_csr()


def test_renewal_is_due_at_two_thirds_of_the_lifetime() -> None:
    """A 90-day certificate seen 10 days in is renewed 60 days after not_before, not at
    expiry (80 days from now) and not at once."""
    now = dt.datetime(2026, 1, 11, tzinfo=dt.UTC)
    enrollment = Enrollment("gw-1", "acme", "wss://cloud.example", not_before=now - dt.timedelta(
        days=10), not_after=now + dt.timedelta(days=80))
    assert renewal_deadline(enrollment, now) == now + dt.timedelta(days=50)


def test_back_dated_short_certificate_is_not_renewed_at_once() -> None:
    """A certificate already past its 2/3 point when first seen waits 1/3 of its rest."""
    now = dt.datetime(2026, 1, 11, tzinfo=dt.UTC)
    enrollment = Enrollment("gw-1", "acme", "wss://cloud.example", not_before=now - dt.timedelta(
        hours=9), not_after=now + dt.timedelta(hours=3))
    assert renewal_deadline(enrollment, now) == now + dt.timedelta(hours=1)
