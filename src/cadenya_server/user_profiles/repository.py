"""Queries of user profiles beyond the search: by email, the administrators, deletion.

New profiles and changes to their text and labels go through
profiles.repository, which keeps the derived search columns right.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cadenya_server.auth.caller import ROLE_ADMIN
from cadenya_server.models import Profile
from cadenya_server.profiles import repository as profiles
from cadenya_server.profiles import text

USER = "user"


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
            return profiles.add(
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
    """The account's administrators (user profiles with role admin), row-locked.

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
            )
            .order_by(Profile.id)
            .with_for_update()
        )
    )


def delete(session: Session, profile: Profile) -> None:
    """Delete a profile; the database drops its labels and memberships with it."""
    session.delete(profile)
    session.flush()
