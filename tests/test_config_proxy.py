"""``cloud.proxy``: the environment, NO_PROXY rules and the precedence of the settings."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clgwd.config import ConfigError, Secret, parse_config
from clgwd.config.proxy import ProxyTarget, bypasses, effective_proxy, from_environment
from clgwd.link.proxy import connect_request, parse_status


@pytest.mark.parametrize(("host", "port", "rules", "expected"), [
    ("cloud.example.com", 443, ["*"], True),
    ("cloud.example.com", 443, ["example.com"], True),
    ("cloud.example.com", 443, [".example.com"], True),
    ("example.com", 443, [".example.com"], True),
    ("badexample.com", 443, ["example.com"], False),
    ("10.1.2.3", 443, ["10.0.0.0/8"], True),
    ("11.1.2.3", 443, ["10.0.0.0/8"], False),
    ("cloud.example.com", 443, ["cloud.example.com:8443"], False),
    ("cloud.example.com", 8443, ["cloud.example.com:8443"], True),
    ("::1", 443, ["::1"], True),
    ("CLOUD.Example.com.", 443, ["cloud.example.com"], True),
])
def test_no_proxy_rules(host: str, port: int, rules: list[str], expected: bool) -> None:
    """NO_PROXY matches as curl does: *, domains and subdomains, networks, host:port."""
    assert bypasses(host, port, rules) is expected


def test_https_proxy_from_the_environment() -> None:
    """https_proxy wins over HTTPS_PROXY; user and password are URL-decoded; NO_PROXY split."""
    target = from_environment({"https_proxy": "http://gw:p%40ss@proxy.lan:8080",
                               "HTTPS_PROXY": "http://other:1", "NO_PROXY": "a, .b"})
    assert target is not None
    assert (target.host, target.port, target.username) == ("proxy.lan", 8080, "gw")
    assert target.password == Secret("p@ss") and target.no_proxy == ("a", ".b")
    assert "p@ss" not in target.describe() and target.source == "environment"
    assert from_environment({}) is None
    with pytest.raises(ValueError, match="HTTPS_PROXY"):
        from_environment({"HTTPS_PROXY": "socks5://proxy.lan:1080"})


def test_page_setting_beats_file_beats_environment() -> None:
    """The page's proxy (or its "no proxy") overrides the file, which overrides the env."""
    config = parse_config("cloud:\n  proxy: {host: file.lan}\n").cloud
    env = {"HTTPS_PROXY": "http://env.lan:1"}
    page = ProxyTarget("page.lan", 3128, source="page")
    assert effective_proxy(page, False, config.proxy, True, env) == page
    assert effective_proxy(None, True, config.proxy, True, env) is None
    chosen = effective_proxy(None, False, config.proxy, True, env)
    assert chosen is not None and chosen.host == "file.lan" and chosen.source == "config"
    chosen = effective_proxy(None, False, None, True, env)
    assert chosen is not None and chosen.host == "env.lan"
    assert effective_proxy(None, False, None, False, env) is None


def test_proxy_config_errors_name_the_key() -> None:
    """A URL typed as host, or a password without user, is refused with the key path."""
    with pytest.raises(ConfigError, match=r"cloud\.proxy\.host"):
        parse_config("cloud:\n  proxy: {host: 'http://proxy.lan:3128'}\n")
    with pytest.raises(ConfigError, match="password needs a username"):
        parse_config("cloud:\n  proxy: {host: proxy.lan, password: x}\n")


def test_connect_request_carries_basic_auth_only_with_a_user() -> None:
    """CONNECT names host:port (IPv6 bracketed) and sends Proxy-Authorization with a user."""
    plain = connect_request(ProxyTarget("p", 1), "::1", 443).decode()
    assert plain.startswith("CONNECT [::1]:443 HTTP/1.1\r\n")
    assert "Proxy-Authorization" not in plain
    auth = connect_request(ProxyTarget("p", 1, "u", Secret("pw")), "h", 443).decode()
    assert "Proxy-Authorization: Basic dTpwdw==\r\n" in auth


@given(st.binary(max_size=200))
def test_parse_status_never_crashes(head: bytes) -> None:
    """Any bytes from a proxy give a status or ValueError, nothing else."""
    try:
        code, _ = parse_status(head)
    except ValueError:
        return
    assert 0 <= code <= 999
