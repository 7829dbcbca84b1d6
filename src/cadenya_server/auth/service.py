"""From a bearer token to a Caller, or Unauthenticated."""

from __future__ import annotations

from datetime import datetime
from functools import partial

import structlog
from sqlalchemy import bindparam, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from cadenya_server.api_keys import repository as api_keys
from cadenya_server.auth import api_key_tokens
from cadenya_server.auth.caller import Caller
from cadenya_server.auth.jwt_tokens import InvalidToken
from cadenya_server.kit.clock import as_utc, now
from cadenya_server.kit.db import Database, after_transaction
from cadenya_server.kit.errors import Unauthenticated
from cadenya_server.kit.runtime import Runtime
from cadenya_server.models import ApiKey, Profile

log = structlog.get_logger(__name__)

PROFILE_TYPES_WITH_JWT = ("user", "system")

# Every request runs one of these: built once, on the tables rather than the mapped
# classes, so that they are read as plain rows without the ORM's machinery
# (see bench/README.md).
_KEYS = ApiKey.__table__.c
_KEY_BY_HASH = select(
    _KEYS.id,
    _KEYS.account_id,
    _KEYS.profile_id,
    _KEYS.permissions,
    _KEYS.enabled,
    _KEYS.expires_at,
    _KEYS.last_used_at,
).where(_KEYS.token_hash == bindparam("token_hash"))
_PROFILES = Profile.__table__.c
_PROFILE_BY_ID = select(_PROFILES.id, _PROFILES.account_id, _PROFILES.type, _PROFILES.role).where(
    _PROFILES.id == bindparam("profile_id")
)


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer …` header."""
    if not authorization:
        raise Unauthenticated("missing Authorization header; send 'Authorization: Bearer <token>'")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must use the Bearer scheme")
    return token.strip()


def authenticate(*, session: Session, runtime: Runtime, token: str) -> Caller:
    """The caller this token speaks for."""
    if token.startswith(api_key_tokens.PREFIX):
        return _api_key_caller(session=session, runtime=runtime, token=token)
    return _jwt_caller(session=session, runtime=runtime, token=token)


def _api_key_caller(*, session: Session, runtime: Runtime, token: str) -> Caller:
    if not api_key_tokens.well_formed(token):
        raise Unauthenticated("malformed API key")
    key = session.execute(
        _KEY_BY_HASH, {"token_hash": runtime.keyring.token_hash(token)}
    ).one_or_none()
    if key is None:
        raise Unauthenticated("unknown API key")
    if not key.enabled:
        raise Unauthenticated("this API key is disabled")
    used_at = now()
    if key.expires_at is not None and as_utc(key.expires_at) <= used_at:
        raise Unauthenticated("this API key has expired")
    last_used = key.last_used_at
    if last_used is None or as_utc(last_used) < used_at - api_keys.LAST_USED_RESOLUTION:
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
            api_keys.touch(session, api_key_id=api_key_id, at=used_at)
    except SQLAlchemyError:
        # Bookkeeping only: it must never fail the request it belongs to.
        log.warning("could not record the last use of an API key", api_key_id=api_key_id)


def _jwt_caller(*, session: Session, runtime: Runtime, token: str) -> Caller:
    try:
        claims = runtime.jwt.verify(token)
    except InvalidToken as exc:
        log.info("jwt rejected", reason=str(exc))
        raise Unauthenticated("invalid token") from exc
    profile = session.execute(_PROFILE_BY_ID, {"profile_id": claims.profile_id}).one_or_none()
    # A token outlives nothing: a deleted profile, or one moved between
    # accounts, no longer authenticates.
    if (
        profile is None
        or profile.account_id != claims.account_id
        or profile.type not in PROFILE_TYPES_WITH_JWT
    ):
        raise Unauthenticated("invalid token")
    return Caller.for_user(account_id=profile.account_id, profile_id=profile.id, role=profile.role)
