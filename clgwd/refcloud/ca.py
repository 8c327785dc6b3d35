"""The reference cloud's certificate authority: one EC P-256 root, files in a directory.

It signs the cloud's own TLS server certificate and the gateways' short-lived client
certificates. Functions are blocking (file I/O, signing): call them via ``to_thread``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from clgwd.protocol.rpc import CERT_URI_PREFIX, gateway_id_from_uri

CLOCK_TOLERANCE: Final = dt.timedelta(minutes=5)
"""Certificates start this far in the past so a slightly slow gateway clock is fine."""


class CsrRejected(ValueError):
    """The CSR is unusable (bad PEM, bad signature, wrong key type, wrong gateway id)."""


@dataclass(frozen=True)
class IssuedCert:
    pem: str
    serial: int
    not_after: dt.datetime


class CertificateAuthority:
    """Loads or creates ``ca.key``/``ca.crt`` in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.cert_path = directory / "ca.crt"
        self.key_path = directory / "ca.key"
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not self.key_path.exists():
            self._create()
        self._key = _load_key(self.key_path)
        self.cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        self.cert_pem = self.cert_path.read_text(encoding="ascii")

    def _create(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "clgwd refcloud CA")])
        now = dt.datetime.now(dt.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - CLOCK_TOLERANCE)
                .not_valid_after(now + dt.timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                             False, False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                               critical=False)
                .sign(key, hashes.SHA256()))
        _write(self.key_path, _key_pem(key), 0o600)
        _write(self.cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)

    def issue_server_cert(self, hosts: list[str], days: int = 365) -> tuple[Path, Path]:
        """A TLS server cert for ``hosts`` (names or IPs); returns (cert, key) paths."""
        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        builder = self._builder(key.public_key(), hosts[0], dt.timedelta(days=days))
        cert = (builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                               critical=False)
                .sign(self._key, hashes.SHA256()))
        cert_path, key_path = self.dir / "server.crt", self.dir / "server.key"
        _write(key_path, _key_pem(key), 0o600)
        _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        return cert_path, key_path

    def sign_gateway_csr(self, csr_pem: str, gateway_id: str,
                         lifetime: dt.timedelta) -> IssuedCert:
        """A client cert for ``gateway_id``; the CSR must name the same id and be P-256."""
        csr = _load_csr(csr_pem)
        public_key = csr.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
                public_key.curve, ec.SECP256R1):
            raise CsrRejected("the CSR key must be EC P-256")
        if _csr_gateway_id(csr) != gateway_id:
            raise CsrRejected("the CSR does not name this gateway id")
        cert = (self._builder(public_key, gateway_id, lifetime)
                .add_extension(x509.SubjectAlternativeName(
                    [x509.UniformResourceIdentifier(CERT_URI_PREFIX + gateway_id)]),
                    critical=False)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                               critical=False)
                .sign(self._key, hashes.SHA256()))
        return IssuedCert(cert.public_bytes(serialization.Encoding.PEM).decode(),
                          cert.serial_number, cert.not_valid_after_utc)

    def _builder(self, public_key: ec.EllipticCurvePublicKey, common_name: str,
                 lifetime: dt.timedelta) -> x509.CertificateBuilder:
        now = dt.datetime.now(dt.UTC)
        return (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
                .issuer_name(self.cert.subject).public_key(public_key)
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - CLOCK_TOLERANCE)
                .not_valid_after(now + lifetime)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key),
                               critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self._key.public_key()), critical=False))


def _load_csr(pem: str) -> x509.CertificateSigningRequest:
    try:
        csr = x509.load_pem_x509_csr(pem.encode())
    except ValueError:
        raise CsrRejected("the CSR is not valid PEM") from None
    if not csr.is_signature_valid:
        raise CsrRejected("the CSR signature is invalid")
    return csr


def _csr_gateway_id(csr: x509.CertificateSigningRequest) -> str | None:
    try:
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    ids = [gid for gid in map(gateway_id_from_uri, uris) if gid is not None]
    return ids[0] if len(ids) == 1 else None


def gateway_id_from_der(der: bytes) -> tuple[str | None, dt.datetime]:
    """Gateway id and expiry of a peer's client certificate (DER)."""
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None, cert.not_valid_after_utc
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    ids = [gid for gid in map(gateway_id_from_uri, uris) if gid is not None]
    return (ids[0] if len(ids) == 1 else None), cert.not_valid_after_utc


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{path} is not an EC key")
    return key


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)
