"""Every query of profiles outside the search (see profiles.search.planner).

New profiles and changes to their text and labels go through `add`, `set_text` and
`set_labels`, which keep the derived search columns right.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cadenya_server.auth.caller import ROLE_ADMIN
from cadenya_server.kit.ids import new_id
from cadenya_server.models import Profile, ProfileLabel
from cadenya_server.profiles import text

USER = "user"


def add(
    session: Session,
    *,
    account_id: str,
    type: str,
    name: str,
    email: str,
    role: str = "member",
    labels: dict[str, str] | None = None,
    external_id: str = "",
    creator_profile_id: str = "",
) -> Profile:
    """A new profile, with its derived keys and label rows."""
    profile = Profile(
        id=new_id("profile"),
        account_id=account_id,
        type=type,
        role=role,
        external_id=external_id,
        creator_profile_id=creator_profile_id,
    )
    set_text(profile, name=name, email=email)
    session.add(profile)
    session.flush()
    set_labels(session, profile, labels or {})
    return profile


def set_text(profile: Profile, *, name: str, email: str) -> None:
    """Name and email, and everything derived from them, in one place."""
    profile.name = name
    profile.email = email
    profile.email_key = text.email_key(email)
    profile.name_key = text.name_key(name)
    profile.search_text = text.search_text(name, email)


def set_labels(session: Session, profile: Profile, labels: dict[str, str]) -> None:
    """Replace the labels of a profile (the JSON column and the filter rows)."""
    profile.labels = dict(labels)
    session.execute(delete(ProfileLabel).where(ProfileLabel.profile_id == profile.id))
    if labels:
        session.execute(
            insert(ProfileLabel),
            [
                {
                    "profile_id": profile.id,
                    "account_id": profile.account_id,
                    "key": k,
                    "value": v,
                    "name_key": profile.name_key,
                    "search_text": profile.search_text,
                }
                for k, v in labels.items()
            ],
        )


def get(session: Session, *, account_id: str, profile_id: str) -> Profile | None:
    """A profile of this account, or None (also for another account's id)."""
    return session.scalars(
        select(Profile).where(Profile.id == profile_id, Profile.account_id == account_id)
    ).one_or_none()


def by_ids(session: Session, *, account_id: str, profile_ids: Iterable[str]) -> dict[str, Profile]:
    """These profiles of this account by id; missing ones are left out."""
    rows = session.scalars(
        select(Profile).where(Profile.account_id == account_id, Profile.id.in_(list(profile_ids)))
    )
    return {row.id: row for row in rows}


def by_email(session: Session, *, account_id: str, email: str) -> Profile | None:
    """The account's profile with this email, compared case-insensitively."""
    return session.scalars(
        select(Profile).where(
            Profile.account_id == account_id, Profile.email_key == text.email_key(email)
        )
    ).one_or_none()


def add_user(
    session: Session,
    *,
    account_id: str,
    name: str,
    email: str,
    role: str,
    external_id: str = "",
    labels: dict[str, str] | None = None,
    creator_profile_id: str,
) -> Profile | None:
    """A new user profile, or None when its email is taken (also by a concurrent insert)."""
    try:
        with session.begin_nested():
            return add(
                session,
                account_id=account_id,
                type=USER,
                name=name,
                email=email,
                role=role,
                external_id=external_id,
                labels=labels,
                creator_profile_id=creator_profile_id,
            )
    except IntegrityError:
        return None


def lock_admin_ids(session: Session, *, account_id: str) -> list[str]:
    """The account's active administrators (user profiles with role admin that are not
    deactivated), row-locked.

    Two demotions or deletions racing for the last two administrators queue
    here, and the second one counts what the first left behind.
    """
    return list(
        session.scalars(
            select(Profile.id)
            .where(
                Profile.account_id == account_id,
                Profile.type == USER,
                Profile.role == ROLE_ADMIN,
                Profile.deactivated_at.is_(None),
            )
            .order_by(Profile.id)
            .with_for_update()
        )
    )


def remove(session: Session, profile: Profile) -> None:
    """Delete a profile; the database drops its labels and memberships with it."""
    session.delete(profile)
    session.flush()


def delete_by_id(session: Session, profile_id: str) -> None:
    """Delete a profile by id with one statement (its labels and memberships go with it)."""
    session.execute(delete(Profile).where(Profile.id == profile_id))


# --- SCIM's look-ups of people (user profiles) -------------------------------------------


# SCIM's look-ups run per request of an identity provider: built once, with parameters,
# rather than per call (the building cost more than the index look-up; bench/README.md).
_USERS = select(Profile).where(Profile.account_id == bindparam("account_id"), Profile.type == USER)
_USERS_BY_EMAIL = _USERS.where(Profile.email_key == bindparam("key")).order_by(Profile.id)
_USERS_BY_EXTERNAL_ID = _USERS.where(Profile.external_id == bindparam("key")).order_by(Profile.id)


def users_where(
    session: Session, *, account_id: str, email: str | None = None, external_id: str | None = None
) -> list[Profile]:
    """The account's user profiles with this email (case-insensitively, through the unique
    index) or else this external id (through its index)."""
    if email is not None:
        key = text.email_key(email)
        if key is None:
            return []  # "" is no email: it must not match the profiles that have none
        statement, value = _USERS_BY_EMAIL, key
    elif external_id is not None:
        statement, value = _USERS_BY_EXTERNAL_ID, external_id
    else:
        raise TypeError("users_where needs an email or an external id")
    return list(session.scalars(statement, {"account_id": account_id, "key": value}))


def users_page(session: Session, *, account_id: str, offset: int, limit: int) -> list[Profile]:
    """The account's user profiles in the search's order (name, then id), from `offset`."""
    return list(
        session.scalars(
            select(Profile)
            .where(Profile.account_id == account_id, Profile.type == USER)
            .order_by(Profile.name_key, Profile.id)
            .offset(offset)
            .limit(limit)
        )
    )
