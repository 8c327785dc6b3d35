"""The ``monitor`` and ``inventory`` config sections: errors name the key, secrets hide."""

from __future__ import annotations

import pytest

from clgwd.config import ConfigError, parse_config


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    return info.value.render()


def test_defaults_are_off() -> None:
    """No SNMP socket, no broker, no platforms unless configured; hourly inventory."""
    config = parse_config("")
    assert config.monitor.snmp.listen == [] and config.monitor.mqtt.url is None
    assert config.inventory.platforms == [] and config.inventory.interval == 3600


def test_bad_listen_names_the_key() -> None:
    """A host name instead of an address is refused with the key path."""
    text = _error("monitor: {snmp: {listen: ['localhost:161'], community: abc}}")
    assert "monitor.snmp.listen[0]" in text and "IPv4 or IPv6" in text


def test_listen_without_credentials_is_refused() -> None:
    """An agent nobody could query is a config error, not a silent no-op."""
    assert "neither community nor users" in _error("monitor: {snmp: {listen: ['127.0.0.1:161']}}")


def test_short_v3_key_is_refused() -> None:
    """v3 keys shorter than 8 characters (RFC 3414) are refused."""
    text = _error("monitor: {snmp: {users: [{name: u, auth_key: short, priv_key: longenough}]}}")
    assert "monitor.snmp.users[0].auth_key" in text and "8 characters" in text


def test_mqtt_url_scheme_and_credentials_in_url() -> None:
    """Only mqtt:// and mqtts:// URLs; a password in the URL is refused (it would be
    logged as part of the URL)."""
    assert "mqtt://host:port" in _error("monitor: {mqtt: {url: 'http://b:1883'}}")
    assert "not the URL" in _error("monitor: {mqtt: {url: 'mqtt://u:p@b:1883'}}")


def test_trap_user_must_exist_and_platform_needs_one_credential() -> None:
    """A v3 trap target names a configured user; a platform has community xor user."""
    assert "not one of users" in _error(
        "monitor: {snmp: {traps: [{address: '127.0.0.1:162', user: nobody}]}}")
    assert "exactly one of community" in _error(
        "inventory: {platforms: [{name: p, address: '127.0.0.1:161'}]}")


def test_secrets_are_redacted_in_dumps() -> None:
    """Community, v3 keys and broker password dump as *** (set/unset only)."""
    config = parse_config(
        "monitor:\n  snmp: {listen: ['127.0.0.1:0'], community: c0mmunity,\n"
        "         users: [{name: u, auth_key: authkey-123, priv_key: privkey-123}]}\n"
        "  mqtt: {url: 'mqtt://127.0.0.1:1883', password: br0ker-pass}\n")
    dumped = str(config.model_dump(mode="json"))
    for secret in ("c0mmunity", "authkey-123", "privkey-123", "br0ker-pass"):
        assert secret not in dumped and secret not in repr(config)
    assert config.monitor.snmp.community is not None
    assert config.monitor.snmp.community.reveal() == "c0mmunity"
