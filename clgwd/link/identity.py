"""The gateway's cloud identity: EC P-256 key, gateway id, client certificate, pinned CA.

Everything lives in ``<state dir>/cloud/`` as files rather than in the database, so
``clgwd enroll`` can write them while the daemon runs and the daemon notices. The key is
created once with mode 0600 and never leaves the gateway; the cloud only sees CSRs.
All functions here do blocking file I/O or CPU-heavy crypto: call them through
``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import ssl
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from clgwd.errors import ClgwdError
from clgwd.protocol.rpc import CERT_URI_PREFIX
from clgwd.store.private import make_private_dir

IDENTITY_DIRNAME: Final = "cloud"
KEY_FILE: Final = "device.key"
CERT_FILE: Final = "device.crt"
CA_FILE: Final = "ca.crt"
META_FILE: Final = "identity.json"
RENEW_FRACTION: Final = 2 / 3


class IdentityError(ClgwdError):
    """The stored identity is unusable (damaged file, wrong permissions, bad cert)."""

    code = "cloud_identity_invalid"
    http_status = 500


@dataclass(frozen=True)
class Enrollment:
    """What a successful enrollment left on disk."""

    gateway_id: str
    account_id: str
    cloud_url: str
    not_before: dt.datetime
    not_after: dt.datetime
    tunnel_authority_key: str = ""
    """Base64 raw Ed25519 public key of the cloud's tunnel authority, if it sent one."""
    release_key: str = ""
    """Base64 raw Ed25519 public key that signs release bundles, if the cloud sent one."""

    @property
    def renew_at(self) -> dt.datetime:
        """2/3 into the certificate's lifetime."""
        return self.not_before + (self.not_after - self.not_before) * RENEW_FRACTION


def renewal_deadline(enrollment: Enrollment, first_seen: dt.datetime) -> dt.datetime:
    """When to renew: 2/3 into the lifetime, but never sooner than 1/3 of what is left at
    ``first_seen`` (when the link first saw this certificate): certificates are back-dated
    for clock tolerance, so a short-lived one would otherwise look overdue at once and be
    renewed in a tight loop."""
    return max(enrollment.renew_at, first_seen + (enrollment.not_after - first_seen) / 3)


class IdentityFiles:
    """Paths and blocking helpers for one identity directory."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / IDENTITY_DIRNAME
        self.key = self.dir / KEY_FILE
        self.cert = self.dir / CERT_FILE
        self.ca = self.dir / CA_FILE
        self.meta = self.dir / META_FILE

    def ensure_key_and_id(self) -> str:
        """Create the key (0600) and gateway id on first use; return the gateway id."""
        make_private_dir(self.dir.parent)  # the state dir: 0700 even before the daemon ran
        make_private_dir(self.dir)
        if not self.key.exists():
            key = ec.generate_private_key(ec.SECP256R1())
            pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
            # `clgwd enroll` and the daemon may race on first start; the first key stays.
            with contextlib.suppress(FileExistsError):
                _write_new(self.key, pem, 0o600)
        meta = self._read_meta()
        if "gateway_id" not in meta:
            meta["gateway_id"] = f"gw-{uuid.uuid4().hex}"
            self._write_meta(meta)
        return str(meta["gateway_id"])

    def gateway_id(self) -> str | None:
        value = self._read_meta().get("gateway_id")
        return value if isinstance(value, str) else None

    def make_csr(self) -> str:
        """A PEM CSR for the stored key naming our gateway id (SAN URI)."""
        gateway_id = self.ensure_key_and_id()
        key = self._load_key()
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, gateway_id)]))
               .add_extension(x509.SubjectAlternativeName(
                   [x509.UniformResourceIdentifier(CERT_URI_PREFIX + gateway_id)]),
                   critical=False)
               .sign(key, hashes.SHA256()))
        return csr.public_bytes(serialization.Encoding.PEM).decode()

    def store_certificate(self, cert_pem: str, ca_pem: str, account_id: str,  # noqa: PLR0917
                          cloud_url: str, tunnel_authority_key: str | None = None,
                          release_key: str | None = None) -> Enrollment:
        """Check the cert matches our key and CA, then replace the files atomically.

        ``tunnel_authority_key`` (enrollment only; renewals pass None) replaces the stored
        one, or removes it when the cloud sent none ("")."""
        cert = _parse_cert(cert_pem, "certificate")
        ca = _parse_cert(ca_pem, "CA certificate")
        self._check_matches_key(cert)
        if cert.issuer != ca.subject:
            raise IdentityError("the cloud's certificate was not issued by the CA it sent")
        _write_replace(self.ca, ca_pem.encode(), 0o600)
        _write_replace(self.cert, cert_pem.encode(), 0o600)
        meta = self._read_meta()
        meta.update(account_id=account_id, cloud_url=cloud_url)
        if tunnel_authority_key is not None:
            meta["tunnel_authority_key"] = tunnel_authority_key
        if release_key is not None:
            meta["release_key"] = release_key
        self._write_meta(meta)
        return self._enrollment(cert, meta)

    def load(self) -> Enrollment | None:
        """The stored enrollment, or None when the gateway is not enrolled."""
        if not (self.cert.exists() and self.ca.exists() and self.key.exists()):
            return None
        meta = self._read_meta()
        cert = _parse_cert(self.cert.read_text(encoding="ascii"), "stored certificate")
        return self._enrollment(cert, meta)

    def fingerprint(self) -> tuple[float, ...]:
        """Changes whenever ``clgwd enroll`` or a renewal rewrites the files."""
        stamps = []
        for path in (self.cert, self.ca, self.meta):
            try:
                stamps.append(path.stat().st_mtime)
            except FileNotFoundError:
                stamps.append(0.0)
        return tuple(stamps)

    def client_ssl_context(self) -> ssl.SSLContext:
        """mTLS context: our cert and key; trust only the pinned CA; verify always."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(self.cert), str(self.key))
        return ctx

    def forget(self) -> None:
        """Remove the certificate and pinned CA (keep key and id): back to not enrolled."""
        for path in (self.cert, self.ca):
            path.unlink(missing_ok=True)

    def _enrollment(self, cert: x509.Certificate, meta: dict[str, object]) -> Enrollment:
        gateway_id, account_id, url = (meta.get("gateway_id"), meta.get("account_id"),
                                       meta.get("cloud_url"))
        if not (isinstance(gateway_id, str) and isinstance(account_id, str)
                and isinstance(url, str)):
            raise IdentityError(f"{self.meta} is incomplete; enroll the gateway again")
        tunnel_key = meta.get("tunnel_authority_key", "")
        release_key = meta.get("release_key", "")
        return Enrollment(gateway_id, account_id, url, cert.not_valid_before_utc,
                          cert.not_valid_after_utc,
                          tunnel_key if isinstance(tunnel_key, str) else "",
                          release_key if isinstance(release_key, str) else "")

    def _load_key(self) -> ec.EllipticCurvePrivateKey:
        mode = self.key.stat().st_mode & 0o077
        if mode:
            raise IdentityError(f"{self.key} is readable by others; expected mode 0600")
        key = serialization.load_pem_private_key(self.key.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise IdentityError(f"{self.key} is not an EC key")
        return key

    def _check_matches_key(self, cert: x509.Certificate) -> None:
        ours = self._load_key().public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        theirs = cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        if ours != theirs:
            raise IdentityError("the cloud returned a certificate for a different key")

    def _read_meta(self) -> dict[str, object]:
        try:
            data = json.loads(self.meta.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError as err:
            raise IdentityError(f"{self.meta} is damaged: {err}") from None
        if not isinstance(data, dict):
            raise IdentityError(f"{self.meta} is damaged: not an object")
        return data

    def _write_meta(self, meta: dict[str, object]) -> None:
        _write_replace(self.meta, json.dumps(meta, indent=2).encode(), 0o600)


def _parse_cert(pem: str, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise IdentityError(f"the {what} is not a valid PEM certificate") from None


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_replace(path: Path, data: bytes, mode: int) -> None:
    """Write to a temp file, fsync, rename: readers see the old or the new file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    _write_new(tmp, data, mode)
    os.replace(tmp, path)
