"""Every query of scim_users: what SCIM keeps of a person beside the profile."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cadenya_server.models import ScimUser


def get(session: Session, *, profile_id: str) -> ScimUser | None:
    return session.get(ScimUser, profile_id)


def by_profile_ids(session: Session, *, profile_ids: Iterable[str]) -> dict[str, ScimUser]:
    ids = list(profile_ids)
    if len(ids) == 1:
        # A look-up's usual one person: by primary key, without building a statement.
        row = session.get(ScimUser, ids[0])
        return {} if row is None else {row.profile_id: row}
    rows = session.scalars(select(ScimUser).where(ScimUser.profile_id.in_(ids)))
    return {row.profile_id: row for row in rows}


def by_user_name(session: Session, *, account_id: str, user_name: str) -> ScimUser | None:
    """The account's person whose userName (one that is not their email) is this one,
    compared case-insensitively (userName is not caseExact)."""
    return session.scalars(
        select(ScimUser).where(
            ScimUser.account_id == account_id, ScimUser.user_name_key == user_name.lower()
        )
    ).one_or_none()


def put(
    session: Session,
    *,
    account_id: str,
    profile_id: str,
    user_name: str | None,
    attributes: dict[str, Any],
) -> tuple[str | None, dict[str, Any]]:
    """Keep these for the profile; the userName and attributes kept before (None, {} for a
    profile SCIM had not written)."""
    row = get(session, profile_id=profile_id)
    if row is None:
        row = ScimUser(profile_id=profile_id, account_id=account_id)
        session.add(row)
        before: tuple[str | None, dict[str, Any]] = (None, {})
    else:
        before = (row.user_name, dict(row.attributes))
    if before != (user_name, attributes):
        row.user_name = user_name
        row.user_name_key = user_name.lower() if user_name else None
        row.attributes = attributes
        session.flush()
    return before
