"""Every query of authentication: a key by its token's hash, a token's profile, a key's use,
a browser session, and the SSO connection and linked person an IdP's token speaks for.

These read the api_keys, profiles, browser_sessions and sso_* tables directly, below the
features: every request authenticates, and the features build on the caller it yields.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, and_, bindparam, delete, or_, select, update
from sqlalchemy.orm import Session, aliased

from cadenya_server.models import ApiKey, BrowserSession, Profile, SsoConnection, SsoIdentity

# last_used_at is rewritten at most this often, so a busy key does not turn
# every read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)

# Every request runs one of these: built once, on the tables rather than the mapped
# classes, so that they are read as plain rows without the ORM's machinery. Through
# the ORM (a statement built per call, an instance loaded into the session)
# authenticating cost a measurable share of every request (bench/README.md).
_KEYS = ApiKey.__table__.c
_PROFILES = Profile.__table__.c
# The person who issued the key: a key outlives no deactivation of its issuer.
_ISSUER = aliased(Profile.__table__, name="issuer")
_KEY_BY_HASH = (
    select(
        _KEYS.id,
        _KEYS.account_id,
        _KEYS.profile_id,
        _KEYS.permissions,
        _KEYS.enabled,
        _KEYS.expires_at,
        _KEYS.last_used_at,
        _ISSUER.c.deactivated_at.label("issuer_deactivated_at"),
    )
    .outerjoin(_ISSUER, _ISSUER.c.id == _KEYS.creator_profile_id)
    .where(_KEYS.token_hash == bindparam("token_hash"))
)
# What auth.service.signed_in_profile decides by. Every query that resolves a person
# selects these, so a column a new rule needs is added here, once.
PERSON_COLUMNS = (
    _PROFILES.id,
    _PROFILES.account_id,
    _PROFILES.type,
    _PROFILES.role,
    _PROFILES.deactivated_at,
)
_PROFILE_BY_ID = select(*PERSON_COLUMNS).where(_PROFILES.id == bindparam("profile_id"))
_SESSIONS = BrowserSession.__table__.c
_SESSION_BY_HASH = select(
    _SESSIONS.account_id, _SESSIONS.profile_id, _SESSIONS.expires_at, _SESSIONS.api_key_hash
).where(_SESSIONS.token_hash == bindparam("token_hash"))
_CONNECTIONS = SsoConnection.__table__.c
_IDENTITIES = SsoIdentity.__table__.c
# The connection that accepts an issuer's tokens for one of the token's audiences, and the
# person its subject is linked to (PERSON_COLUMNS; NULL: never signed in), in one round
# trip: an IdP token costs no more trips than an API key.
_BEARER_CONNECTION = (
    select(
        _CONNECTIONS.account_id.label("connection_account_id"),
        _CONNECTIONS.issuer,
        _CONNECTIONS.audience,
        _CONNECTIONS.jwks_uri,
        _IDENTITIES.profile_id.label("linked_profile_id"),
        *PERSON_COLUMNS,
    )
    .select_from(
        SsoConnection.__table__.outerjoin(
            SsoIdentity.__table__,
            and_(
                _IDENTITIES.connection_id == _CONNECTIONS.id,
                _IDENTITIES.subject == bindparam("subject"),
            ),
        ).outerjoin(Profile.__table__, _PROFILES.id == _IDENTITIES.profile_id)
    )
    .where(_CONNECTIONS.bearer_key.in_(bindparam("bearer_keys", expanding=True)))
)


def key_by_hash(session: Session, token_hash: str) -> Row[Any] | None:
    """The key whose token has this hash, with its issuer's deactivation, as a plain row,
    or None."""
    return session.execute(_KEY_BY_HASH, {"token_hash": token_hash}).one_or_none()


def profile_by_id(session: Session, profile_id: str) -> Row[Any] | None:
    """A profile's id, account, type, role and deactivation, as a plain row, or None."""
    return session.execute(_PROFILE_BY_ID, {"profile_id": profile_id}).one_or_none()


def profile(session: Session, profile_id: str) -> Profile | None:
    """A profile by id (of any account), whole, or None."""
    return session.get(Profile, profile_id)


def browser_session(session: Session, token_hash: str) -> Row[Any] | None:
    """The session whose token has this hash (account, profile, expiry, and the hash of the
    API key it was started with, if it was), or None."""
    return session.execute(_SESSION_BY_HASH, {"token_hash": token_hash}).one_or_none()


def add_browser_session(session: Session, row: BrowserSession) -> None:
    session.add(row)


def remove_browser_session(session: Session, token_hash: str) -> None:
    session.execute(delete(BrowserSession).where(BrowserSession.token_hash == token_hash))


def remove_key_sessions(session: Session, api_key_hash: str) -> None:
    session.execute(delete(BrowserSession).where(BrowserSession.api_key_hash == api_key_hash))


def bearer_connection(session: Session, *, bearer_keys: list[str], subject: str) -> Row[Any] | None:
    """The connection accepting tokens under one of `bearer_keys`, with the person linked
    to `subject` (`linked_profile_id` None when they never signed in), or None."""
    rows = session.execute(
        _BEARER_CONNECTION, {"bearer_keys": bearer_keys, "subject": subject}
    ).all()
    # Several would mean a token for several audiences that two connections accept: it
    # names no one account, so it names none.
    return rows[0] if len(rows) == 1 else None


def touch(session: Session, *, api_key_id: str, at: datetime) -> None:
    """Note a use at `at`, unless a use within the resolution is already noted."""
    session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == api_key_id,
            or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < at - LAST_USED_RESOLUTION),
        )
        # A use is not a change of the key: updated_at keeps its value.
        .values(last_used_at=at, updated_at=ApiKey.updated_at)
    )
