"""Sealed bundles: HPKE (RFC 9180) to the recipient agency, Ed25519-signed by the sender.

The HPKE `info` binds the ciphertext to its request and both agencies, so a bundle re-addressed
to another agency or request fails to open; the signature covers the header and the ciphertext,
so it proves who sent it and that nothing was altered.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ._errors import CryptoError
from ._keys import AgencyKeys, b64, hpke_public_key, signing_public_key, unb64

FORMAT = "safeshare-bundle-v1"
# Whatever failed (wrong key, altered bytes, another sender, meant for another agency), one answer.
UNOPENABLE = "bundle cannot be opened: not sealed to this agency's key, altered, or not from its sender"
_SUITES = {
    "X25519": hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM),
    "MLKEM768_X25519": hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM),
}


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
    sealed = suite.encrypt(plaintext, hpke_public_key(header.suite, recipient_public_b64), info=header.info())
    signature = signing_key.sign(header.info() + hashlib.sha256(sealed).digest())
    envelope = {
        "format": FORMAT,
        "request_id": header.request_id,
        "sender": header.sender,
        "recipient": header.recipient,
        "suite": header.suite,
        "sealed": "@",
        "signature": b64(signature),
    }
    # The same bytes as json.dumps of the whole envelope, without passing the ciphertext's base64
    # (a third larger than the bundle) through the JSON encoder's escaping scan: base64 needs none.
    # The quoted pair cannot occur elsewhere: inside a JSON string its quotes would be escaped.
    head, _, tail = json.dumps(envelope, sort_keys=True).encode().partition(b'"sealed": "@"')
    return b"".join((head, b'"sealed": "', base64.b64encode(sealed), b'"', tail))


def _parse(bundle: bytes) -> tuple[BundleHeader, dict]:
    try:
        env = json.loads(bundle)
        if env["format"] != FORMAT or env["suite"] not in _SUITES:
            raise CryptoError(UNOPENABLE)
        return BundleHeader(env["request_id"], env["sender"], env["recipient"], env["suite"]), env
    except (ValueError, KeyError, TypeError) as err:
        raise CryptoError(UNOPENABLE) from err


def read_header(bundle: bytes) -> BundleHeader:
    return _parse(bundle)[0]


def open_bundle(
    bundle: bytes, *, recipient: str, keys: AgencyKeys, sender_public_b64: str
) -> tuple[BundleHeader, bytes]:
    """Verify the sender's signature, then decrypt. Any failure is the same CryptoError."""
    header, env = _parse(bundle)  # parsed once: a bundle's JSON is as large as the bundle
    if header.recipient != recipient or header.suite != keys.suite:
        raise CryptoError(UNOPENABLE)
    try:
        sealed = unb64(env["sealed"])
        signing_public_key(sender_public_b64).verify(
            unb64(env["signature"]), header.info() + hashlib.sha256(sealed).digest()
        )
        return header, _SUITES[header.suite].decrypt(sealed, keys.hpke, info=header.info())
    # The HPKE binding raises its own exception types on a bad ciphertext; all become one error.
    except Exception as err:
        raise CryptoError(UNOPENABLE) from err
