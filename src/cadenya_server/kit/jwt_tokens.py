"""JWTs this server mints for profiles, and their verification (OWASP ASVS 5.0 V9).

- One algorithm, EdDSA, fixed by the server: `none`, HS* and RS* never verify,
  whatever the header claims.
- The key comes only from the server's own key set, found by exact `kid`;
  `jku`, `x5u`, `jwk` and `x5c` in a header are never followed.
- `exp`, `iat`, `iss`, `aud`, `sub`, `jti` are required; `exp`/`nbf`/`iat`
  get a small leeway for clock skew.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

import jwt

from cadenya_server.kit.clock import now
from cadenya_server.kit.crypto import Keyring

ALGORITHM = "EdDSA"
ACCOUNT_CLAIM = "account_id"
_REQUIRED = ["exp", "iat", "iss", "aud", "sub", "jti"]
# A tuple, not a set: `typ` may be any JSON value, and a list or object is unhashable.
_ACCEPTED_TYPES = (None, "JWT", "at+jwt")


class InvalidToken(Exception):
    """The token does not verify; the message is for logs, not for the caller."""


@dataclass(frozen=True)
class TokenClaims:
    """What a verified token says: the profile it speaks for, its account, its id."""

    profile_id: str
    account_id: str
    jti: str


@dataclass(frozen=True)
class JwtIssuer:
    """Mints and verifies the server's tokens with the keyring's signing key."""

    keyring: Keyring
    issuer: str
    audience: str
    leeway_seconds: int = 30

    def mint(self, *, profile_id: str, account_id: str, ttl_seconds: int) -> str:
        """A signed token for the profile, valid for `ttl_seconds`."""
        issued = now()
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": profile_id,
            ACCOUNT_CLAIM: account_id,
            "iat": issued,
            "nbf": issued,
            "exp": issued + timedelta(seconds=ttl_seconds),
            "jti": secrets.token_urlsafe(16),
        }
        return jwt.encode(
            claims,
            self.keyring.jwt_private_key,
            algorithm=ALGORITHM,
            headers={"kid": self.keyring.jwt_kid, "typ": "JWT"},
        )

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [self.keyring.jwk()]}

    def verify(self, token: str) -> TokenClaims:
        """The claims of a token this server issued and that is valid now."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"unreadable header: {exc}") from exc
        if header.get("alg") != ALGORITHM:
            raise InvalidToken(f"algorithm {header.get('alg')!r} is not allowed")
        if header.get("typ") not in _ACCEPTED_TYPES:
            raise InvalidToken(f"token type {header.get('typ')!r} is not accepted")
        if "crit" in header:
            raise InvalidToken("critical header parameters are not supported")
        # Exact lookup in our own key set; the kid is never a path or a URL.
        keys = {self.keyring.jwt_kid: self.keyring.jwt_public_key}
        key = keys.get(header.get("kid")) if isinstance(header.get("kid"), str) else None
        if key is None:
            raise InvalidToken("unknown key id")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_seconds,
                options={"require": _REQUIRED},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        subject, account_id, jti = claims.get("sub"), claims.get(ACCOUNT_CLAIM), claims.get("jti")
        if not all(isinstance(v, str) and v for v in (subject, account_id, jti)):
            raise InvalidToken("sub, account_id and jti must be non-empty strings")
        return TokenClaims(profile_id=subject, account_id=account_id, jti=jti)
