"""Build the configured ``UserSource``; the only place that knows every connector.

MiVoice Office 400, MiVoice Business (native) and MX-ONE are valid config (so the
onboarding page can offer and store them) but their read protocols are not public;
asking them for users raises ``ConnectorNotAvailable`` with a clear message instead of
inventing a protocol.

Each connector module is imported when a source of its type is built, so a gateway
without an LDAP directory never loads ldap3, nor one without MySQL aiomysql
(``connector_module`` names the module; ``clgwd.tasks.import_off_loop`` loads it ahead
from async code).
"""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Final

from clgwd.config.pbx import PbxConfig
from clgwd.pbx.model import ConnectorNotAvailable, SourceRead, UserSource

VENDOR_NAMES: Final = {
    "mivoice_office_400": "MiVoice Office 400",
    "mivoice_business": "MiVoice Business",
    "mx_one": "MiVoice MX-ONE",
}
_DEFAULT_DB: Final = {"connect_mysql": "shoreware", "freepbx_mysql": "asterisk"}
CONNECTOR_MODULES: Final = {
    "csv": "clgwd.pbx.csv_source", "ldif": "clgwd.pbx.ldif_source",
    "ldap": "clgwd.pbx.ldap_source", "connect_mysql": "clgwd.pbx.connect_mysql",
    "freepbx_mysql": "clgwd.pbx.freepbx_mysql",
}


def connector_module(pbx: PbxConfig) -> str | None:
    """The module that reads ``pbx``'s type (None: no PBX, or no public protocol)."""
    return CONNECTOR_MODULES.get(pbx.type)


class UnavailableSource:
    """A modelled PBX type without a public read protocol."""

    kind = "unavailable"

    def __init__(self, pbx_type: str, host: str, port: int) -> None:
        self.pbx_type = pbx_type
        self.host = host
        self.port = port

    def describe(self) -> str:
        return f"{VENDOR_NAMES[self.pbx_type]} at {self.host}:{self.port or '-'}"

    async def read_users(self) -> SourceRead:
        raise ConnectorNotAvailable(
            f"connector not available for this PBX type yet ({VENDOR_NAMES[self.pbx_type]}): "
            "its user-read protocol is not publicly documented. Export the users as LDIF or "
            "CSV, or point clgwd at the directory (LDAP) the PBX is fed from.")


def build_source(pbx: PbxConfig, executor: Executor | None = None) -> UserSource | None:
    """The source for ``pbx``, or None when no PBX is configured. Blocking reads run on
    ``executor`` when given (see ``model.run_blocking``)."""
    if pbx.type == "none":
        return None
    if pbx.type in VENDOR_NAMES:
        return UnavailableSource(pbx.type, pbx.host, pbx.effective_port)
    if pbx.type in ("csv", "ldif"):
        assert pbx.file.path is not None  # checked by the config model
        if pbx.type == "csv":
            from clgwd.pbx.csv_source import CsvSource  # noqa: PLC0415 - see module doc

            return CsvSource(pbx.file.path, pbx.file.encoding, pbx.country_code,
                             executor=executor)
        from clgwd.pbx.ldif_source import LdifSource  # noqa: PLC0415

        return LdifSource(pbx.file.path, pbx.ldap, pbx.file.encoding, pbx.country_code,
                          executor=executor)
    if pbx.type == "ldap":
        from clgwd.pbx.ldap_source import LdapSource  # noqa: PLC0415

        return LdapSource(pbx.host, pbx.effective_port, pbx.ldap, bind_dn=pbx.username,
                          password=pbx.password, timeout=pbx.read_timeout,
                          country_code=pbx.country_code, executor=executor)
    return _mysql_source(pbx)


def _mysql_source(pbx: PbxConfig) -> UserSource:
    from clgwd.pbx.mysql_common import MysqlReader  # noqa: PLC0415

    reader = MysqlReader(pbx.host, pbx.effective_port, user=pbx.username,
                         password=pbx.password,
                         database=pbx.mysql.database or _DEFAULT_DB[pbx.type],
                         connect_timeout=pbx.mysql.connect_timeout)
    if pbx.type == "connect_mysql":
        from clgwd.pbx.connect_mysql import ConnectMysqlSource  # noqa: PLC0415

        return ConnectMysqlSource(reader, pbx.read_timeout)
    from clgwd.pbx.freepbx_mysql import FreePbxMysqlSource  # noqa: PLC0415

    return FreePbxMysqlSource(reader, pbx.read_timeout, pbx.country_code)
