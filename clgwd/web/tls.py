"""The device's self-signed HTTPS certificate.

A technician opens the page by ``cloudlink.local``, the host name or an IP, so the
certificate names all of them; it cannot be publicly trusted, so its SHA-256 fingerprint
is logged at every start (and printed by ``clgwd setup-code``) for the technician to
compare with what the browser shows. It is made once and kept, so the fingerprint on the
label stays true; it is remade only when it no longer names the current host name.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import itertools
import logging
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

_LOGGER = logging.getLogger(__name__)
MDNS_NAME: Final = "cloudlink.local"
CERT_FILENAME: Final = "web-tls.crt"
KEY_FILENAME: Final = "web-tls.key"
_VALID_DAYS: Final = 3650


@dataclass(frozen=True)
class DeviceCertificate:
    cert_path: Path
    key_path: Path
    fingerprint: str
    """SHA-256 of the DER certificate, colon-separated upper-case hex (browser style)."""


def fingerprint_of(cert: x509.Certificate) -> str:
    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))


def wanted_names(hostname: str, names: Iterable[str], ips: Iterable[str]) -> tuple[
        list[str], list[str]]:
    """DNS names and IPs the certificate must carry (wildcard binds add nothing)."""
    dns = sorted({MDNS_NAME, "localhost", hostname.lower(), f"{hostname.lower()}.local",
                  *names} - {""})
    addrs = {"127.0.0.1", "::1"}
    for ip in ips:
        if not ipaddress.ip_address(ip).is_unspecified:
            addrs.add(ip)
    return dns, sorted(addrs)


def local_addresses() -> list[str]:
    """The host's own unicast IPs, from procfs (Linux; blocking; [] elsewhere).

    Used only when a certificate is made: a DHCP address that changes later does not
    remake it (the fingerprint on the label must stay true); configured
    ``tls_listen`` addresses do.
    """
    found: set[str] = set()
    with contextlib.suppress(OSError):
        lines = Path("/proc/net/fib_trie").read_text().splitlines()
        for prev, line in itertools.pairwise(lines):
            if line.strip() == "/32 host LOCAL":
                found.add(prev.strip().removeprefix("|-- "))
    with contextlib.suppress(OSError):
        for row in Path("/proc/net/if_inet6").read_text().splitlines():
            raw = row.split()[0]
            ip6 = ipaddress.IPv6Address(int(raw, 16))
            if not ip6.is_link_local:
                found.add(str(ip6))
    valid = set()
    for text in found:
        with contextlib.suppress(ValueError):
            valid.add(str(ipaddress.ip_address(text)))
    return sorted(valid)


def ensure_certificate(state_dir: Path, names: Iterable[str], ips: Iterable[str]) -> (
        DeviceCertificate):
    """Load the kept certificate, or make one (blocking: run it in a thread)."""
    dns, addrs = wanted_names(socket.gethostname(), names, ips)
    cert_path, key_path = state_dir / CERT_FILENAME, state_dir / KEY_FILENAME
    if cert_path.exists() and key_path.exists():
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except ValueError as err:
            # Damaged (a power cut before this version wrote them durably): a new
            # certificate beats a daemon that cannot start; the console shows the new
            # fingerprint.
            _LOGGER.warning("The HTTPS certificate or key in %s is damaged (%s); making a "
                            "new one", state_dir, err)
        else:
            if _covers(cert, dns, addrs):
                return DeviceCertificate(cert_path, key_path, fingerprint_of(cert))
    cert = _make(key_path, dns, sorted({*addrs, *local_addresses()}))
    _write_durably(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return DeviceCertificate(cert_path, key_path, fingerprint_of(cert))


def _write_durably(path: Path, data: bytes, mode: int) -> None:
    """Temp file, fsync, rename, fsync the directory: after a power cut the file is the
    old one or the new one, never empty or half-written."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _covers(cert: x509.Certificate, dns: list[str], addrs: list[str]) -> bool:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    have_dns = set(san.get_values_for_type(x509.DNSName))
    have_ip = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    not_after = cert.not_valid_after_utc
    fresh = not_after - datetime.datetime.now(datetime.UTC) > datetime.timedelta(days=30)
    return fresh and set(dns) <= have_dns and set(addrs) <= have_ip


def _make(key_path: Path, dns: list[str], addrs: list[str]) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    _write_durably(key_path, pem, 0o600)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, MDNS_NAME)])
    now = datetime.datetime.now(datetime.UTC)
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns]
    sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in addrs]
    return (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=_VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )


def load_fingerprint(state_dir: Path) -> str | None:
    """The kept certificate's fingerprint, or None before the first start (blocking)."""
    path = state_dir / CERT_FILENAME
    if not path.exists():
        return None
    return fingerprint_of(x509.load_pem_x509_certificate(path.read_bytes()))
