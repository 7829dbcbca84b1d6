"""Every query of authentication: a key by its token's hash, a token's profile, a key's use.

These read the api_keys and profiles tables directly, below both features: every
request authenticates, and the features build on the caller it yields.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, bindparam, or_, select, update
from sqlalchemy.orm import Session, aliased

from cadenya_server.models import ApiKey, Profile

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
_PROFILE_BY_ID = select(
    _PROFILES.id, _PROFILES.account_id, _PROFILES.type, _PROFILES.role, _PROFILES.deactivated_at
).where(_PROFILES.id == bindparam("profile_id"))


def key_by_hash(session: Session, token_hash: str) -> Row[Any] | None:
    """The key whose token has this hash, with its issuer's deactivation, as a plain row,
    or None."""
    return session.execute(_KEY_BY_HASH, {"token_hash": token_hash}).one_or_none()


def profile_by_id(session: Session, profile_id: str) -> Row[Any] | None:
    """A profile's id, account, type, role and deactivation, as a plain row, or None."""
    return session.execute(_PROFILE_BY_ID, {"profile_id": profile_id}).one_or_none()


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
