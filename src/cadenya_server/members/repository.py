"""Every query of workspace members."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cadenya_server.kit.ids import new_id
from cadenya_server.models import Profile, WorkspaceMember


def get(session: Session, *, workspace_id: str, profile_id: str) -> WorkspaceMember | None:
    return session.scalars(
        select(WorkspaceMember).where(
            WorkspaceMember.workspace_id == workspace_id,
            WorkspaceMember.profile_id == profile_id,
        )
    ).one_or_none()


def add(
    session: Session,
    *,
    account_id: str,
    workspace_id: str,
    profile_id: str,
    creator_profile_id: str,
) -> tuple[WorkspaceMember, bool]:
    """The profile's actor in the workspace, and whether this call created it."""
    existing = get(session, workspace_id=workspace_id, profile_id=profile_id)
    if existing is not None:
        return existing, False
    member = WorkspaceMember(
        id=new_id("actor"),
        account_id=account_id,
        workspace_id=workspace_id,
        profile_id=profile_id,
        creator_profile_id=creator_profile_id,
    )
    try:
        with session.begin_nested():
            session.add(member)
            session.flush()
    except IntegrityError:
        # A concurrent add of the same profile won the unique index: its actor is the one.
        existing = get(session, workspace_id=workspace_id, profile_id=profile_id)
        if existing is None:
            raise
        return existing, False
    return member, True


def remove(session: Session, member: WorkspaceMember) -> None:
    session.delete(member)


def page(
    session: Session, *, workspace_id: str, after: str | None, limit: int
) -> list[tuple[WorkspaceMember, Profile]]:
    """Up to `limit` members with their profiles, in the order they were added."""
    statement = (
        select(WorkspaceMember, Profile)
        .join(Profile, Profile.id == WorkspaceMember.profile_id)
        .where(WorkspaceMember.workspace_id == workspace_id)
    )
    if after is not None:
        statement = statement.where(WorkspaceMember.id > after)
    rows = session.execute(statement.order_by(WorkspaceMember.id).limit(limit))
    return [(member, profile) for member, profile in rows]


def count(session: Session, *, workspace_id: str) -> int:
    return session.scalar(
        select(func.count())
        .select_from(WorkspaceMember)
        .where(WorkspaceMember.workspace_id == workspace_id)
    )


def profiles_of(session: Session, *, workspace_id: str) -> list[Profile]:
    """Every member's profile, in the order they were added."""
    return list(
        session.scalars(
            select(Profile)
            .join(WorkspaceMember, WorkspaceMember.profile_id == Profile.id)
            .where(WorkspaceMember.workspace_id == workspace_id)
            .order_by(WorkspaceMember.id)
        )
    )
