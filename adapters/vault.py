"""Encryption of connection secrets at rest, keyed by a key derived from SECRET_KEY."""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from adapters.errors import PermanentError


class Vault:
    """Encrypts and decrypts short secrets with a Fernet key derived from SECRET_KEY."""

    def __init__(self, secret_key: str) -> None:
        derived = HKDF(
            algorithm=hashes.SHA256(),
            length=32,
            salt=b"abaha-kiotviet-sync",
            info=b"connection-secrets-v1",
        ).derive(secret_key.encode("utf-8"))
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def encrypt(self, plaintext: str) -> str:
        """Return the ciphertext of `plaintext` as text."""
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        """Return the plaintext; fail clearly when SECRET_KEY changed since it was stored."""
        try:
            return self._fernet.decrypt(ciphertext.encode("ascii")).decode("utf-8")
        except InvalidToken as exc:
            raise PermanentError(
                "a stored connection secret cannot be decrypted: SECRET_KEY changed since the "
                "connection was saved; save the connection again"
            ) from exc
