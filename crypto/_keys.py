"""Key pairs and secret files. Private keys live in files readable by their owner only."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey, MLKEM768PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from ._errors import CryptoError

Suite = Literal["X25519", "MLKEM768_X25519"]
SUITES: tuple[Suite, ...] = ("X25519", "MLKEM768_X25519")
# Agencies get the post-quantum hybrid by default: sealed records are kept for decades, longer
# than X25519 alone can be trusted against a recorded-now, decrypted-later adversary.
DEFAULT_SUITE: Suite = "MLKEM768_X25519"

_X25519 = 32
_MLKEM_SEED = 64
_MLKEM768_PUBLIC = 1184


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
    os.chmod(path, 0o600)  # an existing file keeps its mode on O_TRUNC


# Key files, key rings and tokens are a few KB at most: a bound stops `--key /dev/zero` or a
# mistaken large file from reading until memory runs out.
MAX_SECRET_BYTES = 64 * 1024


def read_secret(path: Path) -> bytes:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_SECRET_BYTES + 1)
    except OSError as err:
        raise CryptoError(f"cannot read key file {path.name}") from err
    if len(data) > MAX_SECRET_BYTES:
        raise CryptoError(f"key file {path.name}: larger than a key file can be")
    return data


def _raw(key: X25519PrivateKey | Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def _raw_public(key: X25519PublicKey | Ed25519PublicKey | MLKEM768PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class AgencyKeys:
    """An agency's private keys: HPKE (bundles sealed to it) and Ed25519 (what it signs).

    The HPKE key is X25519, or for the hybrid suite an ML-KEM-768 seed plus an X25519 key, as the
    X-Wing style combiner in RFC 9180's post-quantum extension expects.
    """

    suite: Suite
    x25519: X25519PrivateKey
    signing: Ed25519PrivateKey
    mlkem: MLKEM768PrivateKey | None = None

    @classmethod
    def generate(cls, suite: Suite = DEFAULT_SUITE) -> AgencyKeys:
        mlkem = MLKEM768PrivateKey.generate() if suite == "MLKEM768_X25519" else None
        return cls(suite, X25519PrivateKey.generate(), Ed25519PrivateKey.generate(), mlkem)

    @property
    def hpke(self) -> X25519PrivateKey | hpke.MLKEM768X25519PrivateKey:
        """The private key HPKE decrypts with, for this agency's suite."""
        if self.mlkem is None:
            return self.x25519
        return hpke.MLKEM768X25519PrivateKey(self.mlkem, self.x25519)

    def to_bytes(self) -> bytes:
        seed = self.mlkem.private_bytes_raw() if self.mlkem is not None else b""
        return seed + _raw(self.x25519) + _raw(self.signing)

    @classmethod
    def from_bytes(cls, data: bytes) -> AgencyKeys:
        # The length says the suite: 64 bytes X25519 + Ed25519; 128 bytes with the ML-KEM seed first.
        if len(data) == 2 * _X25519:
            return cls("X25519", X25519PrivateKey.from_private_bytes(data[:32]),
                       Ed25519PrivateKey.from_private_bytes(data[32:]))
        if len(data) == _MLKEM_SEED + 2 * _X25519:
            return cls(
                "MLKEM768_X25519",
                X25519PrivateKey.from_private_bytes(data[64:96]),
                Ed25519PrivateKey.from_private_bytes(data[96:]),
                MLKEM768PrivateKey.from_seed_bytes(data[:64]),
            )
        raise CryptoError("not an agency key file")

    def save(self, path: Path) -> None:
        write_secret(path, self.to_bytes())

    @classmethod
    def load(cls, path: Path) -> AgencyKeys:
        return cls.from_bytes(read_secret(path))

    @property
    def hpke_public_b64(self) -> str:
        x = _raw_public(self.x25519.public_key())
        return b64(x if self.mlkem is None else _raw_public(self.mlkem.public_key()) + x)

    @property
    def signing_public_b64(self) -> str:
        return b64(_raw_public(self.signing.public_key()))


@dataclass(frozen=True)
class SigningKey:
    """A person's Ed25519 key: a manager signs decisions with it, a practitioner overrides."""

    key: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    def save(self, path: Path) -> None:
        write_secret(path, _raw(self.key))

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        data = read_secret(path)
        if len(data) != 32:
            raise CryptoError("not a signing key file")
        return cls(Ed25519PrivateKey.from_private_bytes(data))

    @property
    def public_b64(self) -> str:
        return b64(_raw_public(self.key.public_key()))

    def sign(self, message: bytes) -> str:
        return b64(self.key.sign(message))


def hpke_public_key(suite: str, text: str) -> X25519PublicKey | hpke.MLKEM768X25519PublicKey:
    raw = unb64(text)
    try:
        if suite == "X25519":
            return X25519PublicKey.from_public_bytes(raw)
        if suite == "MLKEM768_X25519" and len(raw) == _MLKEM768_PUBLIC + _X25519:
            return hpke.MLKEM768X25519PublicKey(
                MLKEM768PublicKey.from_public_bytes(raw[:_MLKEM768_PUBLIC]),
                X25519PublicKey.from_public_bytes(raw[_MLKEM768_PUBLIC:]),
            )
    except ValueError as err:
        raise CryptoError(f"not a {suite} public key") from err
    raise CryptoError(f"not a {suite} public key")


def signing_public_key(text: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(unb64(text))
    except ValueError as err:
        raise CryptoError("not an Ed25519 public key") from err


def check_public_key(text: str) -> str:
    """The text if it is a base64 Ed25519 public key; CryptoError otherwise."""
    signing_public_key(text)
    return text


def verify(public_b64: str, signature_b64: str, message: bytes) -> None:
    """Raise CryptoError unless the signature is the key's over exactly this message.

    Safeshare's one Ed25519 check: bundles, audit checkpoints, and the actors' signed actions (in
    the workflow's Update validators, inside the sandbox, where cryptography is passed through)."""
    try:
        signing_public_key(public_b64).verify(unb64(signature_b64), message)
    except InvalidSignature as err:
        raise CryptoError("signature does not verify") from err


class SignedAction(Protocol):
    """What `signed_by` needs of an actor's action (schemas' `Signed`)."""

    signature: str | None
    signed_at: object

    def signed_message(self, request_id: str, request_sha256: str | None) -> bytes: ...


def signed_by(action: SignedAction, request_id: str, request_sha256: str | None, public_key: str) -> bool:
    """Whether the action carries the holder of `public_key`'s signature over this action of this
    request and content, made at a stated time. The Update validators and intake both ask it."""
    if action.signature is None or action.signed_at is None:
        return False
    try:
        verify(public_key, action.signature, action.signed_message(request_id, request_sha256))
    except CryptoError:
        return False
    return True
