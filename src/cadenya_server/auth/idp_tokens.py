"""Tokens an account's identity provider signed: ID tokens at sign-in, access tokens on the API.

Held to the rules of the server's own tokens (kit/jwt_tokens.py, OWASP ASVS V9):

- Only asymmetric algorithms verify: `none`, HS* (an HMAC keyed with the IdP's *public*
  key is the classic forgery) and anything unlisted are refused whatever the header says,
  and the key's type must fit the algorithm (joserfc checks it).
- The key comes only from the issuer's own key set (its discovery document's `jwks_uri`),
  found by exact `kid` (a token without one only when the set holds a single key); `jku`,
  `x5u`, `jwk` and `x5c` in a header are never followed.
- `iss` must equal the connection's issuer, `aud` must hold the expected audience (with
  `azp` naming it when there are several), `exp`, `iat` and `sub` are required, and a
  small leeway covers clock skew.

The key sets are cached per process by `kid`. An unknown `kid` refetches the set (an IdP
rotating its keys), but at most once a minute per set, so a stream of forged kids cannot
make the server hammer the IdP; no request goes to the IdP for a known key.

An access token, which a service sends on every call, is verified once per process: the
outcome is remembered (bounded, by the token's SHA-256 and the connection's issuer,
audience and key set) until the token expires, so the signature check, most of the cost
of an IdP token (bench/README.md), is not paid again. Only the token's verification is
remembered, never the person: the caller's profile is still read on every request.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry, Key

ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
REFRESH_INTERVAL_SECONDS = 60.0
FETCH_TIMEOUT_SECONDS = 5.0
MAX_KEY_SET_BYTES = 256 * 1024
MAX_REMEMBERED = 10_000


class InvalidIdpToken(Exception):
    """The token does not verify; the message is for logs, not for the caller."""


@dataclass
class _KeySet:
    keys: dict[str, Key] = field(default_factory=dict)
    fetched_at: float = float("-inf")
    lock: threading.Lock = field(default_factory=threading.Lock)


_sets: dict[str, _KeySet] = {}
_sets_lock = threading.Lock()


def _fetch(jwks_uri: str) -> dict[str, Key]:
    try:
        response = httpx.get(jwks_uri, timeout=FETCH_TIMEOUT_SECONDS, follow_redirects=False)
        response.raise_for_status()
        if len(response.content) > MAX_KEY_SET_BYTES:
            raise InvalidIdpToken("the IdP's key set is too large")
        document = response.json()
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
        raise InvalidIdpToken(f"cannot read the IdP's key set: {exc}") from exc
    keys: dict[str, Key] = {}
    for entry in document.get("keys", []) if isinstance(document, dict) else []:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        try:
            keys[str(entry.get("kid", ""))] = JWKRegistry.import_key(entry)
        except (JoseError, ValueError, TypeError):
            continue  # a key type this server does not use; the others still count
    return keys


def _pick(keys: dict[str, Key], kid: str | None) -> Key | None:
    if kid is None:
        # A token without a kid is verified only by a set's one and only key.
        return next(iter(keys.values())) if len(keys) == 1 else None
    return keys.get(kid)


def _key(jwks_uri: str, kid: str | None) -> Key:
    with _sets_lock:
        cached = _sets.setdefault(jwks_uri, _KeySet())
    key = _pick(cached.keys, kid)
    if key is not None:
        return key
    with cached.lock:
        key = _pick(cached.keys, kid)
        if key is None and time.monotonic() - cached.fetched_at >= REFRESH_INTERVAL_SECONDS:
            cached.fetched_at = time.monotonic()
            cached.keys = _fetch(jwks_uri)
            key = _pick(cached.keys, kid)
    if key is None:
        raise InvalidIdpToken(f"no key of the issuer's key set has the key id {kid!r}")
    return key


_remembered: OrderedDict[bytes, dict[str, Any]] = OrderedDict()
_remembered_lock = threading.Lock()


def _recall(digest: bytes, leeway_seconds: int) -> dict[str, Any] | None:
    with _remembered_lock:
        claims = _remembered.get(digest)
        if claims is not None and claims["exp"] + leeway_seconds < time.time():
            del _remembered[digest]
            return None
    return claims


def _remember(digest: bytes, claims: dict[str, Any]) -> None:
    with _remembered_lock:
        _remembered[digest] = claims
        while len(_remembered) > MAX_REMEMBERED:
            _remembered.popitem(last=False)


def unverified_claims(token: str) -> dict[str, Any]:
    """The claims of a compact JWS, NOT verified: only to find whom to verify it against."""
    try:
        compact = jws.extract_compact(token.encode())
        claims = json.loads(compact.payload)
    except (JoseError, ValueError) as exc:
        raise InvalidIdpToken(f"unreadable token: {exc}") from exc
    if not isinstance(claims, dict):
        raise InvalidIdpToken("the payload is not a JSON object")
    return claims


def audiences(claims: Mapping[str, Any]) -> list[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    if isinstance(aud, list) and all(isinstance(a, str) for a in aud):
        return aud
    return []


def verify(
    token: str,
    *,
    issuer: str,
    audience: str,
    jwks_uri: str,
    nonce: str | None = None,
    leeway_seconds: int = 30,
    remember: bool = False,
) -> dict[str, Any]:
    """The claims of a token `issuer` signed for `audience`, valid now; else InvalidIdpToken.

    `remember`: an access token verified before (for the same issuer, audience and key
    set) is taken as verified until it expires."""
    digest = b""
    if remember:
        context = "\x00".join((token, issuer, audience, jwks_uri))
        digest = hashlib.sha256(context.encode()).digest()
        recalled = _recall(digest, leeway_seconds)
        if recalled is not None:
            return recalled
    claims = _verify(token, issuer, audience, jwks_uri, leeway_seconds)
    if nonce is not None and claims.get("nonce") != nonce:
        raise InvalidIdpToken("the nonce is not this sign-in's")
    if remember:
        _remember(digest, claims)
    return claims


def _verify(
    token: str, issuer: str, audience: str, jwks_uri: str, leeway_seconds: int
) -> dict[str, Any]:
    try:
        compact = jws.extract_compact(token.encode())
    except (JoseError, ValueError) as exc:
        raise InvalidIdpToken(f"unreadable token: {exc}") from exc
    header = compact.protected
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in ALGORITHMS:
        raise InvalidIdpToken(f"algorithm {alg!r} is not allowed")
    if "crit" in header:
        raise InvalidIdpToken("critical header parameters are not supported")
    if kid is not None and (not isinstance(kid, str) or not kid):
        raise InvalidIdpToken("the key id must be a non-empty string")
    key = _key(jwks_uri, kid)
    try:
        verified = jwt.decode(token, key, algorithms=[alg])
        jwt.JWTClaimsRegistry(
            leeway=leeway_seconds,
            iss={"essential": True, "value": issuer},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
        ).validate(verified.claims)
    except (JoseError, ValueError) as exc:
        raise InvalidIdpToken(str(exc)) from exc
    claims = verified.claims
    held = audiences(claims)
    if audience not in held:
        raise InvalidIdpToken("the token is not for this audience")
    if len(held) > 1 and claims.get("azp") != audience:
        raise InvalidIdpToken("a token for several audiences must name this one in azp")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise InvalidIdpToken("sub must be a non-empty string")
    if not isinstance(claims.get("exp"), int | float):
        raise InvalidIdpToken("exp must be a number")
    return claims
