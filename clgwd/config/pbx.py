"""Config sections ``pbx`` (where users come from) and ``sync`` (how they are kept in step).

The shape follows the gateway's "Configure PBX" dialog (PBX type, name, address, port,
"CloudLink system username/password") so the onboarding page can map fields one to one;
connector-specific settings live in the ``mysql``, ``ldap`` and ``file`` sub-sections.
Every key has a default: with ``type: none`` the sync component idles and says
"no PBX configured". Cross-field rules (a MySQL source needs a host, a file source needs
a path) are checked here so a bad file is rejected at load time, not at the first sync.
"""

from __future__ import annotations

import re
from typing import Annotated, Final, Literal, Self

from pydantic import Field, model_validator

from clgwd.config.secret import Secret
from clgwd.config.types import AbsolutePath, Port, Seconds, StrictModel

PbxType = Literal[
    "none", "connect_mysql", "ldap", "ldif", "csv", "freepbx_mysql",
    "mivoice_office_400", "mivoice_business", "mx_one",
]
"""Supported PBX types; the last three are modelled but have no public read protocol."""

UNAVAILABLE_TYPES: Final = frozenset({"mivoice_office_400", "mivoice_business", "mx_one"})
NETWORK_TYPES: Final = frozenset({"connect_mysql", "freepbx_mysql", "ldap"}) | UNAVAILABLE_TYPES
FILE_TYPES: Final = frozenset({"ldif", "csv"})

DEFAULT_PORTS: Final = {
    "connect_mysql": 4308,  # ShoreWare config DB (pbx.md §4.2)
    "freepbx_mysql": 3306,
    "ldap": 389,
}

LdapPreset = Literal["openldap", "active_directory", "mivb_ids", "custom"]
LdapSecurity = Literal["none", "starttls", "ldaps"]

_HOST_RE: Final = re.compile(r"^[A-Za-z0-9._:\-\[\]]{1,253}$")
_LDAP_FIELDS: Final = frozenset({
    "source_key", "extension", "first_name", "last_name", "display_name", "email",
    "client_username", "dids", "caller_id", "groups", "department", "location",
    "language", "mac", "disabled", "modified",
})


def _check_host(value: str) -> str:
    if value and not _HOST_RE.fullmatch(value):
        raise ValueError("must be a host name or IP address")
    return value


Host = Annotated[str, Field(max_length=253)]


class MysqlSettings(StrictModel):
    """Settings of the two MySQL connectors (MiVoice Connect and FreePBX)."""

    database: str | None = None
    """Database name; default ``shoreware`` (Connect) or ``asterisk`` (FreePBX)."""
    connect_timeout: Seconds = 10.0


class LdapSettings(StrictModel):
    """LDAP / Active Directory search settings (also the attribute map of LDIF files)."""

    preset: LdapPreset = "openldap"
    security: LdapSecurity = "none"
    """``ldaps`` (TLS from the first byte, port 636) or ``starttls`` (upgrade on 389)."""
    ca_file: AbsolutePath | None = None
    """PEM bundle that signs the server certificate; default: the system store."""
    verify_tls: bool = True
    base_dn: str = ""
    user_filter: str | None = None
    """Search filter; default from the preset, e.g. ``(objectClass=inetOrgPerson)``."""
    page_size: Annotated[int, Field(ge=1, le=10_000)] = 500
    group_base_dn: str | None = None
    """Where to search group entries (groupOfNames / groupOfUniqueNames ``member`` /
    ``uniqueMember``, posixGroup ``memberUid``, AD ``group`` ``member``); their names
    are added to the members' groups. Unset: groups come only from the user entries'
    own attribute (``memberOf``)."""
    group_filter: str | None = None
    """Group search filter; default from the preset, e.g. for openldap
    ``(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup))``."""
    attributes: dict[str, str] = Field(default_factory=dict)
    """Overrides of the preset map: normalized field -> LDAP attribute (required for
    ``custom``, e.g. a MiVoice 5000 directory)."""

    @model_validator(mode="after")
    def _known_fields(self) -> Self:
        unknown = sorted(set(self.attributes) - _LDAP_FIELDS)
        if unknown:
            raise ValueError(f"attributes: unknown field(s) {unknown}; must be among "
                             f"{sorted(_LDAP_FIELDS)}")
        if self.preset == "custom" and "source_key" not in self.attributes:
            raise ValueError("attributes.source_key must be set for preset custom")
        return self


class FileSettings(StrictModel):
    """A directory export on disk (LDIF from MiVB IDS, or the documented CSV columns)."""

    path: AbsolutePath | None = None
    encoding: str = "utf-8"


class PbxConfig(StrictModel):
    """The PBX (or directory) users are read from."""

    type: PbxType = "none"
    name: Annotated[str, Field(max_length=64)] = ""
    """Display name of the PBX ("PBX Name" in the vendor dialog)."""
    source_id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.\-]{0,62}$")] | None = None
    """Stable identity of this source in the sync state; default ``<type>``. Changing it
    makes every user look new, so set it once."""
    host: Host = ""
    port: Port | None = None
    """Default: 4308 (Connect), 3306 (FreePBX), 389 or 636 (LDAP)."""
    username: Annotated[str, Field(max_length=256)] = ""
    """Read-only login ("CloudLink System Username"; Connect: ``st_configread``)."""
    password: Secret | None = None
    country_code: Annotated[str, Field(pattern=r"^([1-9][0-9]{0,2})?$")] = ""
    """Country calling code (``1``, ``44``) used to write national numbers as E.164;
    empty: numbers without ``+``/``00`` are kept as digits."""
    read_timeout: Seconds = 120.0
    """A read that takes longer fails (and therefore never deletes anything)."""
    mysql: MysqlSettings = MysqlSettings()
    ldap: LdapSettings = LdapSettings()
    file: FileSettings = FileSettings()

    @model_validator(mode="after")
    def _check_required(self) -> Self:
        _check_host(self.host)
        if self.type in NETWORK_TYPES and not self.host:
            raise ValueError(f"host must be set for type {self.type}")
        if self.type in FILE_TYPES and self.file.path is None:
            raise ValueError(f"file.path must be set for type {self.type}")
        return self

    @property
    def effective_source_id(self) -> str:
        return self.source_id or self.type

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        if self.type == "ldap" and self.ldap.security == "ldaps":
            return 636
        return DEFAULT_PORTS.get(self.type, 0)


EmailPolicy = Literal["sync_and_flag", "hold_back"]


class ClientUsernameSettings(StrictModel):
    """Connect HYBRID "client username must be an email address" options."""

    replace_with_email: bool = False
    """"Replace with user email address if available and unique in the system"."""
    append_domain: Annotated[str, Field(pattern=r"^([A-Za-z0-9\-]+\.)+[A-Za-z]{2,}$")] | None = None
    """"Append domain name": added as ``@domain`` to client usernames that are not emails."""


class SyncConfig(StrictModel):
    """Schedule and safety rules of the user sync."""

    interval_minutes: Annotated[int, Field(ge=1, le=1440)] = 20
    """"PBX Sync Schedule (in minutes)"; 20 is the gateway's default."""
    allow_empty_read: bool = False
    """A read with 0 users is an error (it would delete everyone) unless this is true."""
    max_deletions_per_run: Annotated[int, Field(ge=0)] = 50
    """A run that would delete more users aborts with an alert and changes nothing."""
    max_missing_ratio: Annotated[float, Field(ge=0.0, le=1.0, strict=False)] = 0.2
    """A run aborts when more than this share of synced users is absent from the read."""
    missing_ratio_min_users: Annotated[int, Field(ge=0)] = 5
    """The ratio is checked only when at least this many users are absent, so a tiny
    directory can still lose one user."""
    delete_after_absent_reads: Annotated[int, Field(ge=1, le=100)] = 2
    """A user is deleted only after this many consecutive complete reads without it."""
    client_username: ClientUsernameSettings = ClientUsernameSettings()
    email_problems: EmailPolicy = "sync_and_flag"
    """Users without an email or sharing one: ``sync_and_flag`` (the vendor's way: they
    are synced, marked ``email_problem`` so the cloud can show why they cannot register)
    or ``hold_back`` (not synced until the email is fixed on the PBX)."""
