"""The OpenID Connect protocol, as a relying party: discovery, the authorization request,
the code exchange. authlib builds the requests; nothing here holds state."""

from __future__ import annotations

import ipaddress
import warnings
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge

with warnings.catch_warnings():
    # authlib 1.9 would rather drive httpx2; the project's httpx is the one it still
    # supports (pinned together in pyproject.toml).
    warnings.simplefilter("ignore")
    from authlib.integrations.httpx_client import AsyncOAuth2Client

from cadenya_server.kit.errors import FailedPrecondition, InvalidArgument, Unauthenticated

TIMEOUT_SECONDS = 5.0
MAX_DOCUMENT_BYTES = 256 * 1024
SCOPE = "openid email profile"
_LOOPBACK_NAMES = frozenset({"localhost"})


def is_loopback(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_issuer(issuer: str, *, field: str = "spec.issuer") -> str:
    """An issuer as OpenID Connect allows it: an https URL without query or fragment (http
    only on loopback, for a provider on the same machine)."""
    try:
        parts = urlsplit(issuer)
        host = parts.hostname
    except ValueError:  # e.g. an unclosed IPv6 bracket
        host = None
    if host is None or parts.query or parts.fragment:
        raise InvalidArgument.field(field, "must be an https URL without query or fragment")
    if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback(host)):
        raise InvalidArgument.field(field, "must be an https URL (http only on loopback)")
    return issuer


@dataclass(frozen=True)
class Provider:
    """What a sign-in needs from the issuer's discovery document."""

    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str


async def discover(issuer: str) -> Provider:
    """Read `{issuer}/.well-known/openid-configuration`; 400 FAILED_PRECONDITION when it is
    unreachable, malformed or names another issuer (OpenID Connect Discovery 1.0, 4.3)."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False) as client:
            response = await client.get(url)
        response.raise_for_status()
        if len(response.content) > MAX_DOCUMENT_BYTES:
            raise ValueError("the document is too large")
        document = response.json()
    except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
        # ValueError: not JSON, too large, or a URL that does not encode (UnicodeError).
        raise FailedPrecondition(
            f"cannot read the issuer's discovery document {url}: {exc}"
        ) from exc
    if not isinstance(document, dict) or document.get("issuer") != issuer:
        raise FailedPrecondition(
            f"the discovery document at {url} does not name {issuer!r} as its issuer"
        )
    endpoints = {}
    for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        value = document.get(name)
        if not isinstance(value, str) or not value.startswith(("https://", "http://")):
            raise FailedPrecondition(f"the discovery document at {url} lacks {name}")
        if value.startswith("http://") and not is_loopback(urlsplit(value).hostname or ""):
            raise FailedPrecondition(f"the discovery document's {name} is not https")
        endpoints[name] = value
    return Provider(**endpoints)


@dataclass(frozen=True)
class AuthorizationRequest:
    """Where to send the browser, and the secrets the callback must find again."""

    url: str
    state: str
    nonce: str
    code_verifier: str


def authorization_request(
    *, authorization_endpoint: str, client_id: str, redirect_uri: str
) -> AuthorizationRequest:
    """The authorization code flow's first leg, with PKCE (S256), `state` and `nonce`."""
    state, nonce, verifier = generate_token(43), generate_token(43), generate_token(64)
    url = prepare_grant_uri(
        authorization_endpoint,
        client_id,
        "code",
        redirect_uri=redirect_uri,
        scope=SCOPE,
        state=state,
        nonce=nonce,
        code_challenge=create_s256_code_challenge(verifier),
        code_challenge_method="S256",
    )
    return AuthorizationRequest(url=url, state=state, nonce=nonce, code_verifier=verifier)


async def exchange_code(
    *,
    token_endpoint: str,
    client_id: str,
    client_secret: str,
    code: str,
    redirect_uri: str,
    code_verifier: str,
) -> str:
    """Redeem an authorization code; the ID token. A code the IdP refuses (replayed,
    expired, another verifier's) is 401."""
    client = AsyncOAuth2Client(
        client_id=client_id,
        client_secret=client_secret,
        token_endpoint_auth_method="client_secret_basic",
        timeout=TIMEOUT_SECONDS,
    )
    try:
        async with client:
            token = await client.fetch_token(
                token_endpoint,
                grant_type="authorization_code",
                code=code,
                redirect_uri=redirect_uri,
                code_verifier=code_verifier,
            )
    except (OAuthError, httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
        raise Unauthenticated(f"the identity provider refused the sign-in: {exc}") from exc
    id_token = token.get("id_token")
    if not isinstance(id_token, str):
        raise Unauthenticated("the identity provider returned no ID token")
    return id_token
