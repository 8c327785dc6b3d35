"""Build the configured ``UserSource``; the only place that knows every connector.

MiVoice Office 400, MiVoice Business (native) and MX-ONE are valid config (so the
onboarding page can offer and store them) but their read protocols are not public;
asking them for users raises ``ConnectorNotAvailable`` with a clear message instead of
inventing a protocol.
"""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Final

from clgwd.config.pbx import PbxConfig
from clgwd.pbx.connect_mysql import ConnectMysqlSource
from clgwd.pbx.csv_source import CsvSource
from clgwd.pbx.freepbx_mysql import FreePbxMysqlSource
from clgwd.pbx.ldap_source import LdapSource
from clgwd.pbx.ldif_source import LdifSource
from clgwd.pbx.model import ConnectorNotAvailable, SourceRead, UserSource
from clgwd.pbx.mysql_common import MysqlReader

VENDOR_NAMES: Final = {
    "mivoice_office_400": "MiVoice Office 400",
    "mivoice_business": "MiVoice Business",
    "mx_one": "MiVoice MX-ONE",
}
_DEFAULT_DB: Final = {"connect_mysql": "shoreware", "freepbx_mysql": "asterisk"}


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
            return CsvSource(pbx.file.path, pbx.file.encoding, pbx.country_code,
                             executor=executor)
        return LdifSource(pbx.file.path, pbx.ldap, pbx.file.encoding, pbx.country_code,
                          executor=executor)
    if pbx.type == "ldap":
        return LdapSource(pbx.host, pbx.effective_port, pbx.ldap, bind_dn=pbx.username,
                          password=pbx.password, timeout=pbx.read_timeout,
                          country_code=pbx.country_code, executor=executor)
    return _mysql_source(pbx)


def _mysql_source(pbx: PbxConfig) -> UserSource:
    reader = MysqlReader(pbx.host, pbx.effective_port, user=pbx.username,
                         password=pbx.password,
                         database=pbx.mysql.database or _DEFAULT_DB[pbx.type],
                         connect_timeout=pbx.mysql.connect_timeout)
    if pbx.type == "connect_mysql":
        return ConnectMysqlSource(reader, pbx.read_timeout)
    return FreePbxMysqlSource(reader, pbx.read_timeout, pbx.country_code)
