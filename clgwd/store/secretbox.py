"""Secrets at rest: AES-256-GCM under a key file that only the daemon can read.

The key file is created once with mode 0600 (O_EXCL, so two processes cannot race to
different keys). Each ciphertext carries a fresh 96-bit nonce and is bound to its name
as associated data, so a ciphertext copied to another row does not decrypt.
"""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from clgwd.config import Secret
from clgwd.errors import StateError
from clgwd.store.db import Database, Transaction

KEY_FILENAME: Final = "secret.key"
_FORMAT: Final = "v1"
_KEY_BYTES: Final = 32
_NONCE_BYTES: Final = 12


def load_or_create_key(path: Path) -> bytes:
    """Read the key file, creating it 0600 if absent (blocking I/O)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        return _read_key(path)
    except OSError as err:
        raise StateError(f"cannot create secret key file {path}: {err.strerror}") from err
    key = AESGCM.generate_key(bit_length=_KEY_BYTES * 8)
    try:
        os.write(fd, key)
        os.fsync(fd)
    finally:
        os.close(fd)
    return key


def read_key(path: Path) -> bytes | None:
    """Read the key file if it exists; never creates it (read-only tools)."""
    try:
        return _read_key(path)
    except FileNotFoundError:
        return None


def _read_key(path: Path) -> bytes:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise StateError(f"secret key file {path} is readable by others (mode "
                         f"{stat.S_IMODE(mode):04o}); expected 0600")
    key = path.read_bytes()
    if len(key) != _KEY_BYTES:
        raise StateError(f"secret key file {path} is damaged ({len(key)} bytes)")
    return key


class SecretBox:
    """Encrypts and decrypts named secrets with the state dir's key."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def encrypt(self, name: str, secret: Secret) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, secret.reveal().encode(), name.encode())
        return f"{_FORMAT}:{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, name: str, token: str) -> Secret:
        version, _, body = token.partition(":")
        if version != _FORMAT:
            raise StateError(f"secret {name!r} has an unknown format")
        raw = base64.b64decode(body)
        try:
            plain = self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], name.encode())
        except InvalidTag:
            raise StateError(f"secret {name!r} cannot be decrypted with this key") from None
        return Secret(plain.decode())


class SecretStore:
    """Named secrets in the ``secrets`` table, encrypted by a ``SecretBox``."""

    def __init__(self, db: Database, box: SecretBox) -> None:
        self._db = db
        self._box = box

    async def put(self, name: str, secret: Secret) -> None:
        async with self._db.transaction() as tx:
            await self.put_in(tx, name, secret)

    async def put_in(self, tx: Transaction, name: str, secret: Secret) -> None:
        """Store ``secret`` inside the caller's transaction (with the change it belongs to)."""
        token = self._box.encrypt(name, secret)
        await tx.execute(
            "INSERT INTO secrets(name, ciphertext) VALUES (?, ?)"
            " ON CONFLICT(name) DO UPDATE SET ciphertext = excluded.ciphertext",
            (name, token))

    async def get(self, name: str) -> Secret | None:
        row = await self._db.fetchone("SELECT ciphertext FROM secrets WHERE name = ?", (name,))
        return None if row is None else self._box.decrypt(name, row["ciphertext"])

    async def is_set(self, name: str) -> bool:
        """Whether a secret exists; what an API may say instead of the value."""
        return await self._db.fetchone("SELECT 1 FROM secrets WHERE name = ?", (name,)) is not None

    async def delete(self, name: str) -> None:
        async with self._db.transaction() as tx:
            await self.delete_in(tx, name)

    @staticmethod
    async def delete_in(tx: Transaction, name: str) -> None:
        """Delete inside the caller's transaction (with the change it belongs to)."""
        await tx.execute("DELETE FROM secrets WHERE name = ?", (name,))
