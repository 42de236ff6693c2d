"""Callers' tokens for the service: RFC 7523 JWTs signed EdDSA (Ed25519) with the caller's own
key, made and checked by PyJWT, never by hand."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import jwt

from ._keys import SigningKey, signing_public_key

ALGORITHM = "EdDSA"
LIFETIME = timedelta(minutes=1)  # what the CLI asks for; the service accepts at most five


class TokenError(Exception):
    """A token that is not well-formed, not EdDSA, or whose signature or audience fails. `reason`
    is the kind of failure, for the audit log; the caller is told only that it was refused."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def issue_token(
    principal: str, key: SigningKey, audience: str, now: datetime, lifetime: timedelta = LIFETIME,
    jti: str | None = None,
) -> str:
    """A bearer token for one call: iss and sub the principal, aud the deployment, used once."""
    claims = {"iss": principal, "sub": principal, "aud": audience, "iat": int(now.timestamp()),
              "exp": int((now + lifetime).timestamp()), "jti": jti or uuid.uuid4().hex}
    return jwt.encode(claims, key.key, algorithm=ALGORITHM, headers={"typ": "JWT"})


def token_issuer(token: str) -> str:
    """The principal a token claims to be from, read before its signature can be checked (the
    key to check it with is that principal's)."""
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise TokenError("malformed") from None
    if header.get("alg") != ALGORITHM:  # `none` included: only EdDSA is ever accepted
        raise TokenError("algorithm")
    issuer = claims.get("iss")
    if not isinstance(issuer, str) or claims.get("sub") != issuer:
        raise TokenError("issuer")
    return issuer


def verify_token(token: str, public_key_b64: str, audience: str) -> dict[str, Any]:
    """The token's claims if its signature is the key's and its audience is this deployment's;
    times are the caller's to check against its own clock (the `now` it is given)."""
    try:
        return jwt.decode(
            token, signing_public_key(public_key_b64), algorithms=[ALGORITHM], audience=audience,
            options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"],
                     "verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )
    except jwt.InvalidAudienceError:
        raise TokenError("audience") from None
    except jwt.InvalidSignatureError:
        raise TokenError("signature") from None
    except jwt.MissingRequiredClaimError:
        raise TokenError("missing_claim") from None
    except jwt.PyJWTError:
        raise TokenError("malformed") from None
