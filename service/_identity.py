"""Who is calling: a bearer token per RFC 7523, signed EdDSA with the caller's own key from the
directory; short-lived, for this deployment, and used once across every replica."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import crypto
from schemas import Directory
from store import Store

from ._access import Principal, principal_of, public_key_of

MAX_LIFETIME = timedelta(minutes=5)
CLOCK_SKEW = timedelta(seconds=30)  # callers' clocks may run a little ahead
MAX_JTI = 128


class Unauthenticated(Exception):
    """No usable credential (401). `reason` is the kind, for the audit log; `claimed` the
    directory id the token claimed, when it is one (never an unknown string a caller typed)."""

    def __init__(self, reason: str, claimed: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.claimed = claimed


def bearer(authorization: str | None) -> str:
    if authorization is None:
        raise Unauthenticated("missing")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("scheme")
    return token.strip()


def _time(claims: dict[str, Any], name: str) -> datetime:
    value = claims.get(name)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(name)
    return datetime.fromtimestamp(value, UTC)


def check_times(claims: dict[str, Any], now: datetime) -> datetime:
    """The token's expiry, if it is valid now and lives five minutes at most."""
    try:
        issued, expires = _time(claims, "iat"), _time(claims, "exp")
        not_before = _time(claims, "nbf") if "nbf" in claims else issued
    except (ValueError, OverflowError, OSError):
        raise Unauthenticated("times") from None
    if expires <= now:
        raise Unauthenticated("expired")
    if issued > now + CLOCK_SKEW or not_before > now + CLOCK_SKEW:
        raise Unauthenticated("future_dated")
    if expires - issued > MAX_LIFETIME:
        raise Unauthenticated("lifetime")
    return expires


async def authenticate(
    authorization: str | None, directory: Directory, store: Store, audience: str, now: datetime
) -> Principal:
    token = bearer(authorization)
    try:
        issuer = crypto.token_issuer(token)
    except crypto.TokenError as err:
        raise Unauthenticated(err.reason) from None
    principal, key = principal_of(directory, issuer), public_key_of(directory, issuer)
    if principal is None:
        raise Unauthenticated("unknown_principal")
    if key is None:
        raise Unauthenticated("no_key", principal.id)
    try:
        claims = crypto.verify_token(token, key, audience)
    except (crypto.TokenError, crypto.CryptoError) as err:
        raise Unauthenticated(getattr(err, "reason", "no_key"), principal.id) from None
    try:
        expires = check_times(claims, now)
    except Unauthenticated as err:
        raise Unauthenticated(err.reason, principal.id) from None
    jti = claims["jti"]
    if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI:
        raise Unauthenticated("jti", principal.id)
    # Last, so that only a token that is otherwise good uses up its id.
    if not await store.use_token(principal.id, jti, expires, now):
        raise Unauthenticated("replayed", principal.id)
    return principal
