"""Key pairs and secret files. Private keys live in files readable by their owner only."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from ._errors import CryptoError

_RAW = {"encoding": serialization.Encoding.Raw, "format": serialization.PublicFormat.Raw}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as err:
        raise CryptoError("not valid base64 key material") from err


def write_secret(path: Path, data: bytes) -> None:
    """Create a file with mode 0600 from the start, so there is no moment it is world-readable."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def read_secret(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise CryptoError(f"cannot read key file {path.name}") from err


@dataclass(frozen=True)
class AgencyKeys:
    """An agency's two private keys: HPKE (bundles sealed to it) and Ed25519 (bundles it sends)."""

    hpke: X25519PrivateKey
    signing: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> AgencyKeys:
        return cls(X25519PrivateKey.generate(), Ed25519PrivateKey.generate())

    def to_bytes(self) -> bytes:
        raw = serialization.PrivateFormat.Raw
        enc = serialization.Encoding.Raw
        none = serialization.NoEncryption()
        return (
            self.hpke.private_bytes(enc, raw, none) + self.signing.private_bytes(enc, raw, none)
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> AgencyKeys:
        if len(data) != 64:
            raise CryptoError("not an agency key file")
        return cls(
            X25519PrivateKey.from_private_bytes(data[:32]),
            Ed25519PrivateKey.from_private_bytes(data[32:]),
        )

    def save(self, path: Path) -> None:
        write_secret(path, self.to_bytes())

    @classmethod
    def load(cls, path: Path) -> AgencyKeys:
        return cls.from_bytes(read_secret(path))

    @property
    def hpke_public_b64(self) -> str:
        return b64(self.hpke.public_key().public_bytes(**_RAW))

    @property
    def signing_public_b64(self) -> str:
        return b64(self.signing.public_key().public_bytes(**_RAW))


def hpke_public_key(text: str) -> X25519PublicKey:
    try:
        return X25519PublicKey.from_public_bytes(unb64(text))
    except ValueError as err:
        raise CryptoError("not an X25519 public key") from err


def signing_public_key(text: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(unb64(text))
    except ValueError as err:
        raise CryptoError("not an Ed25519 public key") from err
