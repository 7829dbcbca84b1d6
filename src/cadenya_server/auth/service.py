"""From a bearer token or a session cookie to a Caller, or Unauthenticated.

Whatever the credential (the server's JWT, a browser session, an IdP's access token), the
person behind it is looked up afresh on every request by `signed_in_profile`, the one
place that decides whether a profile may act: no role is cached across requests.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import structlog
from sqlalchemy import Row
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from cadenya_server.auth import api_key_tokens, idp_tokens, repository
from cadenya_server.auth.caller import Caller
from cadenya_server.kit.clock import as_utc, now
from cadenya_server.kit.crypto import Keyring, b64url
from cadenya_server.kit.db import Database, after_transaction
from cadenya_server.kit.errors import Unauthenticated
from cadenya_server.kit.jwt_tokens import InvalidToken
from cadenya_server.kit.runtime import Runtime
from cadenya_server.models import BrowserSession, Profile

log = structlog.get_logger(__name__)

PROFILE_TYPES_WITH_JWT = ("user", "system")
SESSION_TOKEN_PREFIX = "cdys_"


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer …` header."""
    if not authorization:
        raise Unauthenticated("missing Authorization header; send 'Authorization: Bearer <token>'")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must use the Bearer scheme")
    return token.strip()


def signed_in_profile(
    session: Session, *, profile_id: str, account_id: str, read: Row[Any] | None = None
) -> Row[Any]:
    """The person a credential speaks for, if they may act now (their id, account, type,
    role and deactivation: repository.PERSON_COLUMNS); else Unauthenticated.

    Every way a request becomes a person (the server's JWT, a session cookie, an IdP's
    token) and every sign-in goes through here, on every request: a profile deleted,
    moved to another account, deactivated, or not a person (an API key's) stops at once.
    `read`: the person's PERSON_COLUMNS when the credential's own query joined them (an
    IdP token's does, saving a round trip); the rule is the same. A plain row, not the
    ORM's object: this runs on every request (bench/README.md).
    """
    profile = read if read is not None else repository.profile_by_id(session, profile_id)
    if (
        profile is None
        or profile.id != profile_id
        or profile.account_id != account_id
        or profile.type not in PROFILE_TYPES_WITH_JWT
        # Deprovisioned (SCIM's `active: false`): refused on the very next request.
        or profile.deactivated_at is not None
    ):
        raise Unauthenticated("invalid token")
    return profile


def authenticate(*, session: Session, runtime: Runtime, token: str) -> Caller:
    """The caller this token speaks for."""
    if token.startswith(api_key_tokens.PREFIX):
        return _api_key_caller(session=session, runtime=runtime, token=token)
    try:
        claims = idp_tokens.unverified_claims(token)
    except idp_tokens.InvalidIdpToken as exc:
        log.info("jwt rejected", reason=str(exc))
        raise Unauthenticated("invalid token") from exc
    # Only to choose whose keys verify it: the server's own, or an IdP's.
    if claims.get("iss") == runtime.jwt.issuer:
        return _jwt_caller(session=session, runtime=runtime, token=token)
    return _idp_caller(session=session, runtime=runtime, token=token, claims=claims)


def _api_key_caller(*, session: Session, runtime: Runtime, token: str) -> Caller:
    if not api_key_tokens.well_formed(token):
        raise Unauthenticated("malformed API key")
    return _key_caller(
        session=session, runtime=runtime, token_hash=runtime.keyring.token_hash(token)
    )


def _key_caller(*, session: Session, runtime: Runtime, token_hash: str) -> Caller:
    """The caller of the key whose token has this hash: a bearer key, or the key a console
    session was started with (which thus ends when the key is disabled, rotated or deleted)."""
    key = repository.key_by_hash(session, token_hash)
    if key is None:
        raise Unauthenticated("unknown API key")
    if not key.enabled:
        raise Unauthenticated("this API key is disabled")
    if key.issuer_deactivated_at is not None:
        # Deprovisioning a person (SCIM `active: false`) stops the keys they issued too.
        raise Unauthenticated("the profile that issued this API key is deactivated")
    used_at = now()
    if key.expires_at is not None and as_utc(key.expires_at) <= used_at:
        raise Unauthenticated("this API key has expired")
    last_used = key.last_used_at
    if last_used is None or as_utc(last_used) < used_at - repository.LAST_USED_RESOLUTION:
        after_transaction(session, partial(_note_use, runtime.db, key.id, used_at))
    return Caller(
        account_id=key.account_id,
        profile_id=key.profile_id,
        scopes=frozenset(key.permissions),
        api_key_id=key.id,
    )


def _note_use(db: Database, api_key_id: str, used_at: datetime) -> None:
    """Record a key's last use in a transaction of its own, after the request's."""
    try:
        with db.transaction() as session:
            repository.touch(session, api_key_id=api_key_id, at=used_at)
    except SQLAlchemyError:
        # Bookkeeping only: it must never fail the request it belongs to.
        log.warning("could not record the last use of an API key", api_key_id=api_key_id)


def _jwt_caller(*, session: Session, runtime: Runtime, token: str) -> Caller:
    try:
        claims = runtime.jwt.verify(token)
    except InvalidToken as exc:
        log.info("jwt rejected", reason=str(exc))
        raise Unauthenticated("invalid token") from exc
    profile = signed_in_profile(session, profile_id=claims.profile_id, account_id=claims.account_id)
    return Caller.for_user(account_id=profile.account_id, profile_id=profile.id, role=profile.role)


def _idp_caller(
    *, session: Session, runtime: Runtime, token: str, claims: dict[str, Any]
) -> Caller:
    """An access token of an account's IdP, for a person who signed in through it before;
    `claims` are its claims, not yet verified."""
    try:
        issuer, subject = claims.get("iss"), claims.get("sub")
        if not isinstance(issuer, str) or not isinstance(subject, str):
            raise idp_tokens.InvalidIdpToken("iss and sub must be strings")
        keys = [f"{issuer} {audience}" for audience in idp_tokens.audiences(claims)]
        found = repository.bearer_connection(session, bearer_keys=keys, subject=subject)
        if found is None:
            raise idp_tokens.InvalidIdpToken("no connection accepts this issuer and audience")
        # The same token: its verified sub is the one looked up above.
        idp_tokens.verify(
            token,
            issuer=found.issuer,
            audience=found.audience,
            jwks_uri=found.jwks_uri,
            leeway_seconds=runtime.settings.jwt_leeway_seconds,
            remember=True,
        )
    except idp_tokens.InvalidIdpToken as exc:
        log.info("idp token rejected", reason=str(exc))
        raise Unauthenticated("invalid token") from exc
    if found.linked_profile_id is None:
        raise Unauthenticated("this person has not signed in to this server yet")
    profile = signed_in_profile(
        session,
        profile_id=found.linked_profile_id,
        account_id=found.connection_account_id,
        read=found,
    )
    return Caller.for_user(account_id=profile.account_id, profile_id=profile.id, role=profile.role)


# --- Browser sessions ------------------------------------------------------------------


def start_session(
    session: Session,
    *,
    keyring: Keyring,
    profile: Profile,
    connection_id: str,
    ttl_seconds: int,
) -> str:
    """A new session for a person who just signed in; its token, for the cookie only."""
    token = SESSION_TOKEN_PREFIX + secrets.token_urlsafe(32)
    started = now()
    repository.add_browser_session(
        session,
        BrowserSession(
            token_hash=keyring.token_hash(token),
            account_id=profile.account_id,
            profile_id=profile.id,
            connection_id=connection_id,
            created_at=started,
            expires_at=started + timedelta(seconds=ttl_seconds),
        ),
    )
    return token


def start_api_key_session(
    session: Session, *, runtime: Runtime, api_key: str, ttl_seconds: int
) -> str:
    """A console session for a pasted API key, which must be valid now; the session's token,
    for the cookie only. The row keeps the key's hash, never the key."""
    caller = _api_key_caller(session=session, runtime=runtime, token=api_key)
    token = SESSION_TOKEN_PREFIX + secrets.token_urlsafe(32)
    started = now()
    repository.add_browser_session(
        session,
        BrowserSession(
            token_hash=runtime.keyring.token_hash(token),
            account_id=caller.account_id,
            profile_id=caller.profile_id,
            connection_id="",
            api_key_hash=runtime.keyring.token_hash(api_key),
            created_at=started,
            expires_at=started + timedelta(seconds=ttl_seconds),
        ),
    )
    return token


def end_session(session: Session, *, keyring: Keyring, token: str) -> None:
    repository.remove_browser_session(session, keyring.token_hash(token))


def end_key_sessions(session: Session, *, api_key_hash: str) -> None:
    """End every console session started with the key whose token has this hash: the key
    is being disabled, rotated or deleted (re-enabling it does not bring them back)."""
    repository.remove_key_sessions(session, api_key_hash)


def _session(session: Session, runtime: Runtime, token: str) -> tuple[Caller, datetime]:
    """The caller a session speaks for (a person, or the API key it was started with), and
    when it ends; else Unauthenticated."""
    found = (
        repository.browser_session(session, runtime.keyring.token_hash(token))
        if token.startswith(SESSION_TOKEN_PREFIX)
        else None
    )
    if found is None or as_utc(found.expires_at) <= now():
        raise Unauthenticated("no session: sign in again")
    if found.api_key_hash is not None:
        caller = _key_caller(session=session, runtime=runtime, token_hash=found.api_key_hash)
        if caller.account_id != found.account_id or caller.profile_id != found.profile_id:
            raise Unauthenticated("no session: sign in again")
        return caller, as_utc(found.expires_at)
    profile = signed_in_profile(session, profile_id=found.profile_id, account_id=found.account_id)
    caller = Caller.for_user(
        account_id=profile.account_id, profile_id=profile.id, role=profile.role
    )
    return caller, as_utc(found.expires_at)


def session_profile(
    *, session: Session, runtime: Runtime, token: str
) -> tuple[Profile, Caller, datetime]:
    """The profile a session cookie speaks for (a person's, or an API key's), whole; its
    caller; and when the session ends."""
    caller, expires_at = _session(session, runtime, token)
    profile = repository.profile(session, caller.profile_id)
    if profile is None:
        raise Unauthenticated("no session: sign in again")
    return profile, caller, expires_at


def session_caller(*, session: Session, runtime: Runtime, token: str) -> Caller:
    """The caller a session cookie speaks for."""
    caller, _ = _session(session, runtime, token)
    return caller


def csrf_token(keyring: Keyring, session_token: str) -> str:
    """The token a cookie-authenticated change must echo in a header: bound to the session,
    and unreadable to another site (it is given only in GET /auth/session's body)."""
    return b64url(keyring.sign(b"csrf\x00" + session_token.encode()))
