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

from ._errors import CryptoError
from ._keys import AgencyKeys, b64, hpke_public_key, unb64, verify

FORMAT = "safeshare-bundle-v2"
# v2 framing: magic, the header's length (4 bytes, big-endian), the header as JSON, then the HPKE
# ciphertext as raw bytes. v1 (bundles sealed before) was one JSON object with the ciphertext in
# base64: encoding and parsing a megabyte of base64 JSON cost 30 times the encryption itself.
_MAGIC = b"SSB2"
_V1 = "safeshare-bundle-v1"
_MAX_HEADER = 4096
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
        # The HPKE info and the signed message keep their v1 form: both versions bind the same fields.
        return f"{_V1}|{self.request_id}|{self.sender}|{self.recipient}|{self.suite}".encode()

    def signed(self, sealed: bytes | memoryview) -> bytes:
        # The sender signs a digest of the ciphertext: one SHA-256 pass, which each side must make.
        return self.info() + hashlib.sha256(sealed).digest()


def seal(
    plaintext: bytes, header: BundleHeader, recipient_public_b64: str, signing_key: Ed25519PrivateKey
) -> bytes:
    suite = _SUITES[header.suite]
    sealed = suite.encrypt(plaintext, hpke_public_key(header.suite, recipient_public_b64), info=header.info())
    head = json.dumps({
        "format": FORMAT,
        "request_id": header.request_id,
        "sender": header.sender,
        "recipient": header.recipient,
        "suite": header.suite,
        "signature": b64(signing_key.sign(header.signed(sealed))),
    }, sort_keys=True).encode()
    return b"".join((_MAGIC, len(head).to_bytes(4, "big"), head, sealed))


def _parse(bundle: bytes) -> tuple[BundleHeader, str, memoryview]:
    """The header, the signature and (without copying it) the ciphertext, of either version."""
    try:
        if bundle[:4] == _MAGIC:
            size = int.from_bytes(bundle[4:8], "big")
            if size > _MAX_HEADER:
                raise CryptoError(UNOPENABLE)
            env = json.loads(bundle[8 : 8 + size])
            sealed = memoryview(bundle)[8 + size :]
            version = FORMAT
        else:
            env = json.loads(bundle)
            sealed = memoryview(unb64(env["sealed"]))
            version = _V1
        if env["format"] != version or env["suite"] not in _SUITES:
            raise CryptoError(UNOPENABLE)
        header = BundleHeader(env["request_id"], env["sender"], env["recipient"], env["suite"])
        return header, env["signature"], sealed
    except (ValueError, KeyError, TypeError, CryptoError) as err:
        raise CryptoError(UNOPENABLE) from err


def read_header(bundle: bytes) -> BundleHeader:
    return _parse(bundle)[0]


def open_bundle(
    bundle: bytes, *, recipient: str, keys: AgencyKeys, sender_public_b64: str
) -> tuple[BundleHeader, bytes]:
    """Verify the sender's signature, then decrypt. Any failure is the same CryptoError."""
    header, signature, sealed = _parse(bundle)
    if header.recipient != recipient or header.suite != keys.suite:
        raise CryptoError(UNOPENABLE)
    try:
        verify(sender_public_b64, signature, header.signed(sealed))
        return header, _SUITES[header.suite].decrypt(sealed, keys.hpke, info=header.info())
    # The HPKE binding raises its own exception types on a bad ciphertext; all become one error.
    except Exception as err:
        raise CryptoError(UNOPENABLE) from err
