"""From a bearer token to a Caller, or Unauthenticated."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

import structlog
from sqlalchemy import Row
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from cadenya_server.auth import api_key_tokens, repository
from cadenya_server.auth.caller import Caller
from cadenya_server.kit.clock import as_utc, now
from cadenya_server.kit.db import Database, after_transaction
from cadenya_server.kit.errors import Unauthenticated
from cadenya_server.kit.jwt_tokens import InvalidToken
from cadenya_server.kit.runtime import Runtime

log = structlog.get_logger(__name__)

PROFILE_TYPES_WITH_JWT = ("user", "system")


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
    key = repository.key_by_hash(session, runtime.keyring.token_hash(token))
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


def signed_in_profile(session: Session, *, profile_id: str, account_id: str) -> Row[Any]:
    """The person a credential speaks for (the server's JWT, a session, an IdP token): their
    profile's id, account, type, role and deactivation, as a plain row.

    The one place that decides whether a person may act: every way a request becomes a
    person goes through it. A credential outlives nothing: a deleted profile, one of another
    account, one that is not a person, or a deactivated one is Unauthenticated.
    """
    profile = repository.profile_by_id(session, profile_id)
    if (
        profile is None
        or profile.account_id != account_id
        or profile.type not in PROFILE_TYPES_WITH_JWT
        or profile.deactivated_at is not None
    ):
        raise Unauthenticated("invalid token")
    return profile
