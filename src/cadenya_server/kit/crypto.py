"""Every key the server needs, derived with HKDF from one operator secret.

The operator pastes any high-entropy string; each purpose gets its own key,
so a leak of one derived key (say, the cursor key) reveals nothing of another.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from functools import cached_property

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_CIPHERTEXT_VERSION = "v1"


class DecryptionError(Exception):
    """Ciphertext that this key cannot open: wrong key, wrong context or tampered."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Keyring:
    """The derived keys of one operator secret."""

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode()

    def _derive(self, purpose: str, length: int = 32) -> bytes:
        hkdf = HKDF(
            algorithm=hashes.SHA256(),
            length=length,
            salt=b"cadenya-server",
            info=purpose.encode(),
        )
        return hkdf.derive(self._secret)

    @cached_property
    def _aead(self) -> AESGCM:
        return AESGCM(self._derive("at-rest-encryption/v1"))

    @cached_property
    def _token_hash_key(self) -> bytes:
        return self._derive("api-key-hash/v1")

    @cached_property
    def _signing_key(self) -> bytes:
        return self._derive("opaque-signature/v1")

    @cached_property
    def jwt_private_key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self._derive("jwt-ed25519/v1"))

    @cached_property
    def jwt_public_key(self) -> Ed25519PublicKey:
        return self.jwt_private_key.public_key()

    @cached_property
    def jwt_kid(self) -> str:
        """RFC 7638 thumbprint of the public key, so the kid changes with the key."""
        x = b64url(self.jwt_public_key.public_bytes_raw())
        canonical = f'{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}'.encode()
        return b64url(hashlib.sha256(canonical).digest())

    def jwk(self) -> dict[str, str]:
        """The public JWT key as a JWK."""
        return {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": b64url(self.jwt_public_key.public_bytes_raw()),
            "kid": self.jwt_kid,
            "alg": "EdDSA",
            "use": "sig",
        }

    def encrypt(self, plaintext: str, *, context: str) -> str:
        """AES-256-GCM with `context` (e.g. the owning row's id) bound as associated data."""
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return f"{_CIPHERTEXT_VERSION}:{b64url(nonce + sealed)}"

    def decrypt(self, ciphertext: str, *, context: str) -> str:
        version, _, body = ciphertext.partition(":")
        if version != _CIPHERTEXT_VERSION:
            raise DecryptionError(f"unknown ciphertext version {version!r}")
        raw = b64url_decode(body)
        try:
            return self._aead.decrypt(raw[:12], raw[12:], context.encode()).decode()
        except InvalidTag as exc:
            raise DecryptionError("ciphertext does not open with this key and context") from exc

    def token_hash(self, token: str) -> str:
        """The keyed hash an API key is stored and looked up by."""
        return hmac.new(self._token_hash_key, token.encode(), hashlib.sha256).hexdigest()

    def sign(self, data: bytes) -> bytes:
        """A MAC for opaque values the server hands out and takes back (cursors)."""
        return hmac.new(self._signing_key, data, hashlib.sha256).digest()[:16]

    def verify(self, data: bytes, mac: bytes) -> bool:
        return hmac.compare_digest(self.sign(data), mac)
