"""Sealed bundles: HPKE (RFC 9180) to the recipient agency, Ed25519-signed by the sender.

The HPKE `info` binds the ciphertext to its request and both agencies, so a bundle re-addressed
to another agency or request fails to open; the signature covers the header and the ciphertext,
so it proves who sent it and that nothing was altered.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from ._errors import CryptoError
from ._keys import b64, hpke_public_key, signing_public_key, unb64

FORMAT = "safeshare-bundle-v1"
_SUITES = {"X25519": hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)}


@dataclass(frozen=True)
class BundleHeader:
    request_id: str
    sender: str
    recipient: str
    suite: str

    def info(self) -> bytes:
        return f"{FORMAT}|{self.request_id}|{self.sender}|{self.recipient}|{self.suite}".encode()


def seal(
    plaintext: bytes, header: BundleHeader, recipient_public_b64: str, signing_key: Ed25519PrivateKey
) -> bytes:
    suite = _SUITES[header.suite]
    sealed = suite.encrypt(plaintext, hpke_public_key(recipient_public_b64), info=header.info())
    signature = signing_key.sign(header.info() + hashlib.sha256(sealed).digest())
    envelope = {
        "format": FORMAT,
        "request_id": header.request_id,
        "sender": header.sender,
        "recipient": header.recipient,
        "suite": header.suite,
        "sealed": b64(sealed),
        "signature": b64(signature),
    }
    return json.dumps(envelope, sort_keys=True).encode()


def read_header(bundle: bytes) -> BundleHeader:
    try:
        env = json.loads(bundle)
        if env["format"] != FORMAT or env["suite"] not in _SUITES:
            raise CryptoError
        return BundleHeader(env["request_id"], env["sender"], env["recipient"], env["suite"])
    except (ValueError, KeyError, TypeError) as err:
        raise CryptoError from err


def open_bundle(
    bundle: bytes, *, recipient: str, private_key: X25519PrivateKey, sender_public_b64: str
) -> tuple[BundleHeader, bytes]:
    """Verify the sender's signature, then decrypt. Any failure is the same CryptoError."""
    header = read_header(bundle)
    if header.recipient != recipient:
        raise CryptoError
    try:
        env = json.loads(bundle)
        sealed = unb64(env["sealed"])
        signing_public_key(sender_public_b64).verify(
            unb64(env["signature"]), header.info() + hashlib.sha256(sealed).digest()
        )
        return header, _SUITES[header.suite].decrypt(sealed, private_key, info=header.info())
    # The HPKE binding raises its own exception types on a bad ciphertext; all become one error.
    except Exception as err:
        raise CryptoError from err
