"""LDAP / Active Directory source (ldap3, run in a worker thread).

Why ldap3: pure Python, kept up to date in Debian (python3-ldap3), supports paged
results, LDAPS and StartTLS. It is synchronous, so the whole read runs in
a worker thread; ``receive_timeout`` bounds each network wait so an abandoned
thread ends on its own.

Progress: the users found so far are counted page by page (``read_progress``); the
total is known only when the server fills in the paged results control's size estimate
(RFC 2696 lets it say 0, "unknown", which OpenLDAP and Active Directory do), so the
page's bar for an LDAP read is usually indeterminate, with the count so far.

Paging is done here rather than with ``extend.standard.paged_search``: with
``raise_exceptions=False`` that helper ends quietly on a failed page, which would turn
a dropped connection into a short user list. Here every page's result code is checked
and anything but success raises, so a read is complete or it is an error.
"""

from __future__ import annotations

import contextlib
import math
import ssl
import warnings
from concurrent.futures import Executor
from typing import Any, Final

with warnings.catch_warnings():
    # ldap3 2.9.1 imports pyasn1 names that pyasn1 >= 0.6 marks deprecated; the warning
    # is about ldap3's code, not ours, and would otherwise fire on every daemon start.
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ldap3\..*")
    warnings.filterwarnings("ignore", message=r".* is deprecated\. Please use .* instead",
                            category=DeprecationWarning)
    import ldap3
    from ldap3.core import exceptions as lexc

from clgwd.config.pbx import LdapSettings
from clgwd.config.secret import Secret
from clgwd.pbx.ldapmap import (
    FILTERS,
    GROUP_ATTRIBUTES,
    GROUP_FILTERS,
    MEMBER_UID_ATTRIBUTE,
    AttributeMap,
    Entry,
    entries_to_read,
    group_memberships,
)
from clgwd.pbx.model import (
    ReadMeter,
    SourceAuthError,
    SourceDataError,
    SourceError,
    SourceRead,
    SourceTimeout,
    SourceUnreachable,
    run_blocking,
)

_PAGED_OID: Final = "1.2.840.113556.1.4.319"
_INVALID_CREDENTIALS: Final = 49


class _ContextTls(ldap3.Tls):  # type: ignore[misc]
    """TLS for ldap3 done by a stdlib ``SSLContext``, host name check included.

    ldap3 2.9 checks the host name itself with ``ssl.match_hostname``, deprecated since
    Python 3.7 and removed in 3.12; the context's own check (``server_hostname``) is
    the maintained path and handles IP-address subjectAltNames.
    """

    def __init__(self, context: ssl.SSLContext, host: str) -> None:
        super().__init__(validate=ssl.CERT_NONE)
        self._context = context
        self._host = host

    def wrap_socket(self, connection: Any, do_handshake: bool = False) -> None:
        connection.socket = self._context.wrap_socket(
            connection.socket, server_side=False, do_handshake_on_connect=do_handshake,
            server_hostname=self._host)


class LdapSource:
    """Users from an LDAP directory, mapped with a preset or a custom attribute map."""

    kind = "ldap"

    def __init__(self, host: str, port: int, settings: LdapSettings, *, bind_dn: str,
                 password: Secret | None, timeout: float, country_code: str = "",
                 executor: Executor | None = None) -> None:
        self.host = host
        self.executor = executor
        self.port = port
        self.settings = settings
        self.bind_dn = bind_dn
        self._password = password
        self.timeout = timeout
        self.country_code = country_code
        self.amap = AttributeMap.from_settings(settings)
        self.meter = ReadMeter("users")
        self.search_filter = settings.user_filter or FILTERS[settings.preset]
        self.group_filter = settings.group_filter or GROUP_FILTERS[settings.preset]
        self.user_attributes = self.amap.attribute_names()
        if settings.group_base_dn is not None:
            # posixGroup memberUid names users by uid, whatever the map reads.
            self.user_attributes = sorted({*self.user_attributes, MEMBER_UID_ATTRIBUTE})

    def describe(self) -> str:
        scheme = "ldaps" if self.settings.security == "ldaps" else "ldap"
        tls = " (StartTLS)" if self.settings.security == "starttls" else ""
        return f"{scheme}://{self.host}:{self.port}/{self.settings.base_dn}{tls}"

    def read_progress(self) -> tuple[int, int | None, str]:
        """Users found so far, of the server's size estimate when it gives one."""
        return self.meter.progress()

    async def read_users(self) -> SourceRead:
        self.meter.start()
        return await run_blocking(self.executor, self._read_blocking)

    def _server(self) -> ldap3.Server:
        tls = None
        if self.settings.security != "none":
            context = ssl.create_default_context(
                cafile=str(self.settings.ca_file) if self.settings.ca_file else None)
            if not self.settings.verify_tls:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            tls = _ContextTls(context, self.host)
        return ldap3.Server(self.host, port=self.port, use_ssl=self.settings.security == "ldaps",
                            tls=tls, get_info=ldap3.NONE, connect_timeout=self.timeout)

    def _read_blocking(self) -> SourceRead:
        conn = ldap3.Connection(
            self._server(), user=self.bind_dn or None,
            password=self._password.reveal() if self._password else None,
            auto_bind=ldap3.AUTO_BIND_NONE, raise_exceptions=True,
            # ldap3 packs this into SO_RCVTIMEO as whole seconds.
            receive_timeout=max(1, math.ceil(self.timeout)), read_only=True,
        )
        try:
            self._open(conn)
            entries = self._search_all(conn, self.settings.base_dn, self.search_filter,
                                       self.user_attributes, self.meter)
            groups = None
            if self.settings.group_base_dn is not None:
                # A failed group search fails the read: users without their groups would
                # be synced as having left every group.
                groups = group_memberships(self._search_all(
                    conn, self.settings.group_base_dn, self.group_filter,
                    list(GROUP_ATTRIBUTES)), entries)
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
            _close(conn)
        users, problems = entries_to_read(entries, self.amap, self.country_code,
                                          groups=groups)
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

    def _search_all(self, conn: ldap3.Connection, base: str, search_filter: str,
                    attributes: list[str], meter: ReadMeter | None = None,
                    ) -> list[tuple[str, Entry]]:
        """Every entry of a paged subtree search, or an error (never a partial list)."""
        entries: list[tuple[str, Entry]] = []
        cookie: Any = None
        while True:
            conn.search(base, search_filter, ldap3.SUBTREE, attributes=attributes,
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
            paged = controls.get(_PAGED_OID, {}).get("value", {})
            cookie = paged.get("cookie")
            if meter is not None:
                estimate = paged.get("size")
                if isinstance(estimate, int) and estimate > 0:
                    meter.total = max(estimate, len(entries))
                meter.done = len(entries)
            if not cookie:
                return entries


def _close(conn: ldap3.Connection) -> None:
    """Unbind, and close the socket even when the connection never got that far (ldap3
    leaves the socket of a failed open or StartTLS behind)."""
    with contextlib.suppress(lexc.LDAPException, OSError):
        conn.unbind()
    sock = getattr(conn, "socket", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.close()
