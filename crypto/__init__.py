"""Safeshare's cryptography: data keys, key files, sealed and signed bundles."""

from ._aead import decrypt, encrypt, new_key
from ._bundle import BundleHeader, open_bundle, read_header, seal
from ._errors import CryptoError
from ._keys import AgencyKeys, b64, read_secret, unb64, write_secret

__all__ = [
    "AgencyKeys",
    "BundleHeader",
    "CryptoError",
    "b64",
    "decrypt",
    "encrypt",
    "new_key",
    "open_bundle",
    "read_header",
    "read_secret",
    "seal",
    "unb64",
    "write_secret",
]
