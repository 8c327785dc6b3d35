"""Host policy verdicts: names, IP literals of this host, and the bounded verdict cache."""

from __future__ import annotations

from unittest import mock

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from clgwd.web.security import VERDICT_CACHE_SIZE, HostPolicy


def _request(host: str, local_address: str = "192.0.2.10") -> web.Request:
    transport = mock.Mock()
    transport.get_extra_info.return_value = (local_address, 443)
    return make_mocked_request("GET", "/api/v1/site", headers={"Host": host},
                               transport=transport)


def test_names_loopback_and_own_address_are_allowed() -> None:
    policy = HostPolicy({"cloudlink.local"})
    assert policy.allows(_request("cloudlink.local"))
    assert policy.allows(_request("CloudLink.local.:8443"))
    assert policy.allows(_request("127.0.0.1:8443"))
    assert policy.allows(_request("192.0.2.10"))
    # A dual-stack listener reports an IPv4 client's local address in mapped form.
    assert policy.allows(_request("192.0.2.10:443", "::ffff:192.0.2.10"))


def test_foreign_names_and_addresses_are_refused() -> None:
    policy = HostPolicy({"cloudlink.local"})
    assert not policy.allows(_request("attacker.example"))
    assert not policy.allows(_request("192.0.2.11"))
    assert not policy.allows(_request(""))
    assert not policy.allows(_request("[bad"))


def test_a_cached_verdict_is_per_local_address() -> None:
    policy = HostPolicy({"cloudlink.local"})
    assert policy.allows(_request("192.0.2.10", local_address="192.0.2.10"))
    assert not policy.allows(_request("192.0.2.10", local_address="198.51.100.1"))


def test_set_names_drops_cached_verdicts() -> None:
    policy = HostPolicy({"cloudlink.local"})
    assert not policy.allows(_request("gw1.example.test"))
    policy.set_names({"cloudlink.local", "gw1.example.test"})
    assert policy.allows(_request("gw1.example.test"))


def test_junk_host_headers_cannot_grow_the_cache() -> None:
    policy = HostPolicy({"cloudlink.local"})
    for i in range(VERDICT_CACHE_SIZE * 3):
        assert not policy.allows(_request(f"junk-{i}.example"))
    assert len(policy._verdicts) <= VERDICT_CACHE_SIZE
