"""Safeshare's cryptography: data keys, key files, signatures, sealed bundles, the payload codec."""

from ._aead import child_index_key, decrypt, encrypt, hmac_sha256_hex, new_key
from ._bundle import UNOPENABLE, BundleHeader, open_bundle, read_header, seal
from ._codec import UNREADABLE, EncryptionCodec, HistoryKeys, KeyRing, data_converter, new_token
from ._errors import CryptoError
from ._keys import (
    DEFAULT_SUITE,
    MAX_SECRET_BYTES,
    SUITES,
    AgencyKeys,
    SigningKey,
    b64,
    check_public_key,
    read_secret,
    signed_by,
    unb64,
    verify,
    write_secret,
)

__all__ = [
    "DEFAULT_SUITE",
    "MAX_SECRET_BYTES",
    "SUITES",
    "UNOPENABLE",
    "UNREADABLE",
    "AgencyKeys",
    "BundleHeader",
    "CryptoError",
    "EncryptionCodec",
    "HistoryKeys",
    "KeyRing",
    "SigningKey",
    "b64",
    "check_public_key",
    "child_index_key",
    "data_converter",
    "decrypt",
    "encrypt",
    "hmac_sha256_hex",
    "new_key",
    "new_token",
    "open_bundle",
    "read_header",
    "read_secret",
    "seal",
    "signed_by",
    "unb64",
    "verify",
    "write_secret",
]
