"""Every query of profiles."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, delete, exists, func, insert, select, tuple_
from sqlalchemy.orm import Session

from cadenya_server.kit.ids import new_id
from cadenya_server.models import Profile, ProfileLabel
from cadenya_server.profiles import text


@dataclass(frozen=True)
class SearchFilter:
    """A search: `needle` is already lower-cased."""

    account_id: str
    needle: str = ""
    type: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


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
                {"profile_id": profile.id, "account_id": profile.account_id, "key": k, "value": v}
                for k, v in labels.items()
            ],
        )


def get(session: Session, *, account_id: str, profile_id: str) -> Profile | None:
    """A profile of this account, or None (also for another account's id)."""
    return session.scalars(
        select(Profile).where(Profile.id == profile_id, Profile.account_id == account_id)
    ).one_or_none()


def _conditions(search: SearchFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [Profile.account_id == search.account_id]
    if search.type:
        conditions.append(Profile.type == search.type)
    if search.needle:
        conditions.append(Profile.search_text.contains(search.needle, autoescape=True))
    for key, value in search.labels.items():
        conditions.append(
            exists().where(
                ProfileLabel.profile_id == Profile.id,
                ProfileLabel.account_id == search.account_id,
                ProfileLabel.key == key,
                ProfileLabel.value == value,
            )
        )
    return conditions


def search_page(
    session: Session, search: SearchFilter, *, after: tuple[str, str] | None, limit: int
) -> list[Profile]:
    """Up to `limit` matches in (name_key, id) order, starting after `after`."""
    statement = select(Profile).where(*_conditions(search))
    if after is not None:
        statement = statement.where(tuple_(Profile.name_key, Profile.id) > tuple_(*after))
    statement = statement.order_by(Profile.name_key, Profile.id).limit(limit)
    return list(session.scalars(statement))


def search_count(session: Session, search: SearchFilter) -> int:
    """How many profiles match."""
    return session.scalar(select(func.count()).select_from(Profile).where(*_conditions(search)))
