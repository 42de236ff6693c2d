"""Safeshare's cryptography: data keys, key files, signatures, sealed bundles, the payload codec."""

from ._aead import decrypt, encrypt, hmac_sha256_hex, new_key
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
    unb64,
    verify,
    write_secret,
)
from ._tokens import TokenError, issue_token, token_issuer, verify_token

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
    "TokenError",
    "b64",
    "check_public_key",
    "data_converter",
    "decrypt",
    "encrypt",
    "hmac_sha256_hex",
    "issue_token",
    "new_key",
    "new_token",
    "open_bundle",
    "read_header",
    "read_secret",
    "seal",
    "token_issuer",
    "unb64",
    "verify",
    "verify_token",
    "write_secret",
]
