"""The naive plan the search is measured against: a substring scan plus a `count(*)`.

It filters on `name_key` and `email_key`, the lower-cased name and email that
Python computes on every write: SQLite's own lower() folds only ASCII, so
`lower(name) LIKE '%łuk%'` would miss "Łukasz" and make the baseline wrong.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, exists, func, or_, select
from sqlalchemy.orm import Session

from cadenya_server.models import Profile, ProfileLabel
from cadenya_server.profiles.search.planner import SearchFilter


def _conditions(search: SearchFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [Profile.account_id == search.account_id]
    if search.type:
        conditions.append(Profile.type == search.type)
    if search.needle:
        escaped = search.needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        conditions.append(
            or_(
                Profile.name_key.like(pattern, escape="\\"),
                Profile.email_key.like(pattern, escape="\\"),
            )
        )
    for key, value in search.labels.items():
        conditions.append(
            exists().where(
                ProfileLabel.profile_id == Profile.id,
                ProfileLabel.key == key,
                ProfileLabel.value == value,
            )
        )
    return conditions


def first_page(session: Session, search: SearchFilter, *, limit: int) -> tuple[list[str], int]:
    """The ids of the first page, in the contract's order, and the number of matches."""
    conditions = _conditions(search)
    # Whole rows, as the API loads them, so the comparison is like for like.
    rows = session.scalars(
        select(Profile).where(*conditions).order_by(Profile.name_key, Profile.id).limit(limit)
    ).all()
    total = session.scalar(select(func.count()).select_from(Profile).where(*conditions))
    return [row.id for row in rows], total or 0
