"""Every query of workspaces."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cadenya_server.kit.ids import new_id
from cadenya_server.models import Workspace

ARCHIVED = "archived"


def add(
    session: Session, *, account_id: str, name: str, description: str = "", creator_profile_id: str
) -> Workspace:
    workspace = Workspace(
        id=new_id("workspace"),
        account_id=account_id,
        name=name,
        description=description,
        creator_profile_id=creator_profile_id,
    )
    session.add(workspace)
    return workspace


def list_active(session: Session, *, account_id: str) -> list[Workspace]:
    """The account's workspaces that are not archived, oldest first."""
    return list(
        session.scalars(
            select(Workspace)
            .where(Workspace.account_id == account_id, Workspace.status != ARCHIVED)
            .order_by(Workspace.id)
        )
    )


def default_for(session: Session, *, account_id: str) -> Workspace | None:
    """The account's oldest workspace that is not archived."""
    return session.scalars(
        select(Workspace)
        .where(Workspace.account_id == account_id, Workspace.status != ARCHIVED)
        .order_by(Workspace.id)
        .limit(1)
    ).first()


def get(session: Session, *, account_id: str, workspace_id: str) -> Workspace | None:
    """A workspace of this account (archived ones included), or None."""
    return session.scalars(
        select(Workspace).where(Workspace.id == workspace_id, Workspace.account_id == account_id)
    ).one_or_none()
