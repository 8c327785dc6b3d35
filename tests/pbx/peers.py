"""Real peers for the connector tests and benchmarks: MariaDB and slapd, started by hand.

Both follow peers.md §9: a temp data dir, loopback only (127.0.0.1), a free port, a
bounded readiness poll, and a stop by PID. Nothing here is a service of the host.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

SQL_DIR = Path(__file__).parent / "sql"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(check, what: str, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not become ready within {timeout} s")


class MariaDB:
    """A throw-away mariadbd on 127.0.0.1 with ``lower_case_table_names=1``."""

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="clgwd-mariadb-"))
        self.port = free_port()
        self.socket = self.base / "run" / "mysqld.sock"
        self.proc: subprocess.Popen[bytes] | None = None

    def _user_args(self) -> list[str]:
        return ["--user=mysql"] if os.geteuid() == 0 else []

    def start(self) -> None:
        (self.base / "data").mkdir()
        (self.base / "run").mkdir()
        if os.geteuid() == 0:
            os.chmod(self.base, 0o755)
            shutil.chown(self.base / "data", "mysql", "mysql")
            shutil.chown(self.base / "run", "mysql", "mysql")
        common = ["--no-defaults", *self._user_args(), f"--datadir={self.base / 'data'}",
                  "--lower-case-table-names=1"]
        subprocess.run(["mariadb-install-db", *common, "--auth-root-authentication-method=socket",
                        "--skip-test-db"], check=True, capture_output=True)
        self.proc = subprocess.Popen(
            ["mariadbd", *common, f"--socket={self.socket}",
             f"--pid-file={self.base / 'run' / 'mysqld.pid'}", f"--port={self.port}",
             "--bind-address=127.0.0.1", "--skip-name-resolve",
             "--innodb-buffer-pool-size=64M", f"--log-error={self.base / 'error.log'}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(lambda: subprocess.run(
            ["mariadb-admin", "--no-defaults", f"--socket={self.socket}", "-uroot", "ping"],
            check=False, capture_output=True).returncode == 0, "mariadbd")

    def sql(self, text: str, database: str | None = None) -> str:
        args = ["mariadb", "--no-defaults", f"--socket={self.socket}", "-uroot", "-N", "-B"]
        if database:
            args.append(database)
        done = subprocess.run(args, input=text.encode(), capture_output=True, check=False)
        if done.returncode:
            raise RuntimeError(done.stderr.decode())
        return done.stdout.decode()

    def create_database(self, name: str, schema_file: str, user: str, password: str) -> None:
        self.sql(f"DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name} CHARACTER SET utf8mb4;"
                 f"CREATE OR REPLACE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}';"
                 f"GRANT SELECT ON {name}.* TO '{user}'@'127.0.0.1';")
        self.sql((SQL_DIR / schema_file).read_text(), name)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        shutil.rmtree(self.base, ignore_errors=True)


SLAPD_CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
pidfile {base}/slapd.pid
argsfile {base}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
TLSCertificateFile {base}/cert.pem
TLSCertificateKeyFile {base}/key.pem
sizelimit unlimited
database mdb
maxsize 1073741824
suffix "dc=pbx,dc=test"
rootdn "cn=admin,dc=pbx,dc=test"
rootpw {rootpw}
directory {base}/db
index objectClass eq
index uid eq
access to attrs=userPassword by self write by anonymous auth by * none
access to * by * read
"""

BASE_LDIF = """\
dn: dc=pbx,dc=test
objectClass: dcObject
objectClass: organization
o: PBX test
dc: pbx

dn: ou=people,dc=pbx,dc=test
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=pbx,dc=test
objectClass: organizationalUnit
ou: groups
"""


class Slapd:
    """A throw-away slapd on 127.0.0.1 with plain LDAP (StartTLS capable) and LDAPS."""

    ADMIN_DN = "cn=admin,dc=pbx,dc=test"
    ADMIN_PW = "adminpw-test"

    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="clgwd-slapd-"))
        self.port = free_port()
        self.ldaps_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.cert = self.base / "cert.pem"

    def start(self) -> None:
        (self.base / "db").mkdir()
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
             "-keyout", str(self.base / "key.pem"), "-out", str(self.cert)],
            check=True, capture_output=True)
        rootpw = subprocess.run(["slappasswd", "-s", self.ADMIN_PW], check=True,
                                capture_output=True).stdout.decode().strip()
        (self.base / "slapd.conf").write_text(SLAPD_CONF.format(base=self.base, rootpw=rootpw))
        self.proc = subprocess.Popen(
            ["slapd", "-d", "0", "-f", str(self.base / "slapd.conf"), "-h",
             f"ldap://127.0.0.1:{self.port}/ ldaps://127.0.0.1:{self.ldaps_port}/"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait(lambda: subprocess.run(
            ["ldapsearch", "-x", "-H", f"ldap://127.0.0.1:{self.port}", "-b", "", "-s", "base"],
            check=False, capture_output=True).returncode == 0, "slapd")
        self.ldapadd(BASE_LDIF)

    def _run(self, tool: str, ldif: str, *extra: str) -> None:
        done = subprocess.run(
            [tool, "-x", "-H", f"ldap://127.0.0.1:{self.port}", "-D", self.ADMIN_DN,
             "-w", self.ADMIN_PW, *extra], input=ldif.encode(), capture_output=True, check=False)
        if done.returncode:
            raise RuntimeError(done.stderr.decode())

    def ldapadd(self, ldif: str) -> None:
        self._run("ldapadd", ldif)

    def ldapmodify(self, ldif: str) -> None:
        self._run("ldapmodify", ldif)

    def delete(self, *dns: str) -> None:
        self._run("ldapdelete", "\n".join(dns) + "\n")

    def delete_subtree(self, dn: str) -> None:
        self._run("ldapdelete", dn + "\n", "-r")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        shutil.rmtree(self.base, ignore_errors=True)


def person_ldif(uid: str, ext: str, first: str, last: str, mail: str | None) -> str:
    lines = [f"dn: uid={uid},ou=people,dc=pbx,dc=test", "objectClass: inetOrgPerson",
             f"uid: {uid}", f"cn: {first} {last}", f"givenName: {first}", f"sn: {last}",
             f"displayName: {first} {last}", f"telephoneNumber: {ext}"]
    if mail is not None:
        lines.append(f"mail: {mail}")
    return "\n".join(lines) + "\n\n"


def _q(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"


def shoreware_user_sql(address_id: int, dn: str, first: str, last: str, email: str | None, *,
                       login: str = "", group: int = 2, mac: str | None = None,
                       did_digits: str | None = None, port_id: int | None = None) -> str:
    """INSERTs for one Connect user: users, tabaddresses, dn, and optionally a port/DID."""
    sql = [
        "INSERT INTO Users (UserDN, UserGroupID, AddressID, GuiLoginName, UserTypeID, "
        "LicenseTypeID, ClientType, CIDNumber) VALUES "
        f"({_q(dn)}, {group}, {address_id}, {_q(login)}, 1, 1, 5, NULL);",
        "INSERT INTO TABAddresses (AddressID, UserDN, FirstName, LastName, EmailAddress, "
        f"DepartmentName, City) VALUES ({address_id}, {_q(dn)}, {_q(first)}, {_q(last)}, "
        f"{_q(email)}, 'Sales', 'Sunnyvale');",
        f"INSERT INTO DN (DN, Description, DNTypeID, Hidden, DNUuid) VALUES ({_q(dn)}, "
        f"{_q(first + ' ' + last)}, 1, 0, UUID());",
    ]
    if mac is not None:
        pid = port_id if port_id is not None else address_id
        sql.append("INSERT INTO Ports (PortID, SwitchID, CurrentDN, HomeDN, MACAddress, "
                   f"PhoneTypeID, IsIPPhone, SIPUserName) VALUES ({pid}, 1, {_q(dn)}, {_q(dn)}, "
                   f"{_q(mac)}, 3, 1, NULL);")
    if did_digits is not None:
        sql.append("INSERT INTO DIDDigitMap (TrunkGroupID, DIDRangeID, Digits, DN, "
                   f"DIDDigitMapID) VALUES (1, 1, {_q(did_digits)}, {_q(dn)}, {address_id});")
    return "\n".join(sql)
