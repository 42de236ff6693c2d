"""Symmetric primitives: AES-256-GCM (a random 96-bit nonce in front of the ciphertext) and HMAC."""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ._errors import CryptoError

NONCE_BYTES = 12
KEY_BYTES = 32


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def encrypt(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def decrypt(key: bytes, blob: bytes, aad: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except (InvalidTag, ValueError) as err:
        raise CryptoError from err


def hmac_sha256_hex(secret: bytes, body: bytes) -> str:
    """How webhook receivers check a body came from this deployment."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def child_index_key(secret: bytes, nhs_number: str) -> str:
    """How the store finds a child's requests without holding the identifier: a keyed hash under
    the deployment's child index key, which Temporal and the store's readers never see."""
    return hmac_sha256_hex(secret, b"safeshare-child-index-v1:" + nhs_number.encode())
