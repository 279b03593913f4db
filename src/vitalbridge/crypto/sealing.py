"""Seal and open secrets stored in the database.

The key-encryption key (KEK) comes from ``VB_SECRET_KEY`` or, failing that, from a 32-byte key
file in the data folder created with 0600 permissions. Production refuses to invent one: a
generated key that nobody backed up would make every stored credential unrecoverable.

Format: ``b"vb1" | nonce(12) | AES-GCM ciphertext+tag``. The ``purpose`` string is bound in as
associated data so a sealed refresh token cannot be replayed as, say, a private key.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vitalbridge.errors import ConfigurationError
from vitalbridge.settings import Environment, Settings

_MAGIC = b"vb1"
KEY_FILE_NAME = "secret.key"


class Sealer:
    def __init__(self, kek: bytes) -> None:
        if len(kek) != 32:
            raise ConfigurationError("the key-encryption key must be 32 bytes")
        self._aead = AESGCM(kek)

    def __repr__(self) -> str:
        return "Sealer(<kek hidden>)"

    def seal(self, plaintext: bytes, purpose: str) -> bytes:
        nonce = os.urandom(12)
        return _MAGIC + nonce + self._aead.encrypt(nonce, plaintext, purpose.encode())

    def open(self, sealed: bytes, purpose: str) -> bytes:
        from cryptography.exceptions import InvalidTag

        if not sealed.startswith(_MAGIC):
            raise ConfigurationError("stored secret is not in vitalbridge sealed format")
        nonce, body = sealed[3:15], sealed[15:]
        try:
            return self._aead.decrypt(nonce, body, purpose.encode())
        except InvalidTag:
            raise ConfigurationError(
                "cannot decrypt a stored secret: VB_SECRET_KEY (or the key file) differs from "
                "the one it was sealed with"
            ) from None

    def seal_text(self, text: str, purpose: str) -> bytes:
        return self.seal(text.encode(), purpose)

    def open_text(self, sealed: bytes, purpose: str) -> str:
        return self.open(sealed, purpose).decode()


def _derive(secret: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"vitalbridge-kek", info=b"kek-v1").derive(secret.encode())


def load_kek(settings: Settings) -> bytes:
    if settings.secret_key is not None and settings.secret_key.get_secret_value():
        return _derive(settings.secret_key.get_secret_value())
    path = Path(settings.data_dir) / KEY_FILE_NAME
    if path.exists():
        data = path.read_bytes()
        if len(data) != 32:
            raise ConfigurationError(f"key file {path} is damaged (expected 32 bytes)")
        return data
    if settings.ecw_environment is Environment.production:
        raise ConfigurationError(
            "production needs a key-encryption key: set VB_SECRET_KEY (keep it in your secret "
            "store) before starting vitalbridge"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    kek = os.urandom(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(kek)
    return kek


def sealer_from_settings(settings: Settings) -> Sealer:
    return Sealer(load_kek(settings))
