"""LDAP / Active Directory source (ldap3, run in a worker thread).

Why ldap3: pure Python, kept up to date in Debian (python3-ldap3), supports paged
results, LDAPS and StartTLS. It is synchronous, so the whole read runs in
``asyncio.to_thread``; ``receive_timeout`` bounds each network wait so an abandoned
thread ends on its own.

Paging is done here rather than with ``extend.standard.paged_search``: with
``raise_exceptions=False`` that helper ends quietly on a failed page, which would turn
a dropped connection into a short user list. Here every page's result code is checked
and anything but success raises, so a read is complete or it is an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any, Final

import ldap3
from ldap3.core import exceptions as lexc

from clgwd.config.pbx import LdapSettings
from clgwd.config.secret import Secret
from clgwd.pbx.ldapmap import FILTERS, AttributeMap, Entry, entries_to_read
from clgwd.pbx.model import (
    SourceAuthError,
    SourceDataError,
    SourceError,
    SourceRead,
    SourceTimeout,
    SourceUnreachable,
)

_PAGED_OID: Final = "1.2.840.113556.1.4.319"
_INVALID_CREDENTIALS: Final = 49


class LdapSource:
    """Users from an LDAP directory, mapped with a preset or a custom attribute map."""

    kind = "ldap"

    def __init__(self, host: str, port: int, settings: LdapSettings, *, bind_dn: str,
                 password: Secret | None, timeout: float, country_code: str = "") -> None:
        self.host = host
        self.port = port
        self.settings = settings
        self.bind_dn = bind_dn
        self._password = password
        self.timeout = timeout
        self.country_code = country_code
        self.amap = AttributeMap.from_settings(settings)
        self.search_filter = settings.user_filter or FILTERS[settings.preset]

    def describe(self) -> str:
        scheme = "ldaps" if self.settings.security == "ldaps" else "ldap"
        tls = " (StartTLS)" if self.settings.security == "starttls" else ""
        return f"{scheme}://{self.host}:{self.port}/{self.settings.base_dn}{tls}"

    async def read_users(self) -> SourceRead:
        return await asyncio.to_thread(self._read_blocking)

    def _server(self) -> ldap3.Server:
        tls = None
        if self.settings.security != "none":
            tls = ldap3.Tls(
                validate=ssl.CERT_REQUIRED if self.settings.verify_tls else ssl.CERT_NONE,
                ca_certs_file=str(self.settings.ca_file) if self.settings.ca_file else None,
                version=ssl.PROTOCOL_TLS_CLIENT,
            )
        return ldap3.Server(self.host, port=self.port, use_ssl=self.settings.security == "ldaps",
                            tls=tls, get_info=ldap3.NONE, connect_timeout=self.timeout)

    def _read_blocking(self) -> SourceRead:
        conn = ldap3.Connection(
            self._server(), user=self.bind_dn or None,
            password=self._password.reveal() if self._password else None,
            auto_bind=ldap3.AUTO_BIND_NONE, raise_exceptions=True,
            receive_timeout=self.timeout, read_only=True,
        )
        try:
            self._open(conn)
            entries = self._search_all(conn)
        except SourceError:
            raise
        except lexc.LDAPSocketReceiveError as err:
            raise SourceTimeout(f"LDAP {self.describe()}: read failed: {err}") from None
        except (lexc.LDAPCommunicationError, lexc.LDAPSocketOpenError,
                lexc.LDAPStartTLSError, lexc.LDAPSSLConfigurationError, OSError) as err:
            raise SourceUnreachable(f"LDAP {self.describe()}: {type(err).__name__}: "
                                    f"{err}") from None
        except lexc.LDAPOperationResult as err:
            raise SourceDataError(f"LDAP {self.describe()}: search failed: "
                                  f"{err.description} {err.message}") from None
        except lexc.LDAPException as err:
            raise SourceUnreachable(f"LDAP {self.describe()}: {type(err).__name__}: "
                                    f"{err}") from None
        finally:
            with contextlib.suppress(lexc.LDAPException):  # the connection may be gone
                conn.unbind()
        users, problems = entries_to_read(entries, self.amap, self.country_code)
        return SourceRead(users, problems)

    def _open(self, conn: ldap3.Connection) -> None:
        conn.open()
        if self.settings.security == "starttls":
            conn.start_tls()
        try:
            conn.bind()
        except lexc.LDAPInvalidCredentialsResult:
            raise SourceAuthError(f"LDAP {self.describe()}: invalid credentials for "
                                  f"{self.bind_dn!r}") from None
        except lexc.LDAPOperationResult as err:
            if err.result == _INVALID_CREDENTIALS:
                raise SourceAuthError(f"LDAP {self.describe()}: bind refused") from None
            raise

    def _search_all(self, conn: ldap3.Connection) -> list[tuple[str, Entry]]:
        entries: list[tuple[str, Entry]] = []
        cookie: Any = None
        while True:
            conn.search(self.settings.base_dn, self.search_filter, ldap3.SUBTREE,
                        attributes=self.amap.attribute_names(),
                        paged_size=self.settings.page_size, paged_cookie=cookie)
            result = conn.result or {}
            if result.get("result") != 0:
                # sizeLimitExceeded and referrals do not raise in ldap3, yet they mean
                # this is not the whole directory.
                raise SourceDataError(f"LDAP {self.describe()}: search incomplete: "
                                      f"{result.get('description')}")
            for item in conn.response or ():
                if item.get("type") != "searchResEntry":
                    continue
                raw = {k.lower(): list(v) for k, v in item["raw_attributes"].items()}
                entries.append((item["dn"], raw))
            controls = result.get("controls") or {}
            cookie = controls.get(_PAGED_OID, {}).get("value", {}).get("cookie")
            if not cookie:
                return entries
