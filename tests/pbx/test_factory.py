"""The configured source, and the vendor types without a public read protocol."""

from __future__ import annotations

import pytest

from clgwd.config import ConfigError, parse_config
from clgwd.pbx.factory import build_source
from clgwd.pbx.model import ConnectorNotAvailable


@pytest.mark.parametrize("pbx_type", ["mivoice_office_400", "mivoice_business", "mx_one"])
async def test_vendor_types_say_connector_not_available(pbx_type: str) -> None:
    """The type is accepted in config but reading answers a clear not-available error."""
    config = parse_config(f"pbx: {{type: {pbx_type}, name: HQ, host: 192.0.2.10, port: 443,"
                          " username: cloudlink, password: s3cret-pw}\n")
    source = build_source(config.pbx)
    assert source is not None
    with pytest.raises(ConnectorNotAvailable, match="connector not available for this PBX "
                                                    "type yet"):
        await source.read_users()


def test_no_pbx_means_no_source() -> None:
    assert build_source(parse_config("").pbx) is None


def test_connect_defaults_port_4308_and_shoreware() -> None:
    """MiVoice Connect defaults: port 4308, database shoreware; password never shown."""
    config = parse_config("pbx: {type: connect_mysql, host: 192.0.2.5, username: st_configread,"
                          " password: passwordconfigread}\n")
    source = build_source(config.pbx)
    assert source is not None
    assert source.describe() == "mysql://st_configread@192.0.2.5:4308/shoreware"
    assert "passwordconfigread" not in repr(config.pbx)


def test_bad_config_names_the_key() -> None:
    """Missing host and a bad port are reported with their key paths."""
    with pytest.raises(ConfigError) as info:
        parse_config("pbx: {type: ldap, port: 70000}\n")
    text = info.value.render()
    assert "pbx.port: must be 1-65535" in text


def test_file_types_need_a_path() -> None:
    with pytest.raises(ConfigError, match=r"file\.path must be set for type csv"):
        parse_config("pbx: {type: csv}\n")
