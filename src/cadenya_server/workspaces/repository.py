"""Every query of workspaces."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Row, bindparam, func, select
from sqlalchemy.orm import Session

from cadenya_server.kit.ids import new_id
from cadenya_server.models import ApiKey, ApiKeyWorkspace, Workspace, WorkspaceMember

ARCHIVED = "archived"


@dataclass(frozen=True)
class WorkspaceFilter:
    """Which workspaces of an account a listing shows."""

    account_id: str
    include_archived: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    # Only the workspaces this profile is a member of.
    member_profile_id: str | None = None
    # Only the workspaces this API key is assigned to.
    api_key_id: str | None = None
    # Only the workspaces with this exact name, or external id (SCIM's group look-ups).
    name: str | None = None
    external_id: str | None = None


def add(
    session: Session,
    *,
    account_id: str,
    name: str,
    description: str = "",
    external_id: str = "",
    labels: dict[str, str] | None = None,
    creator_profile_id: str,
) -> Workspace:
    workspace = Workspace(
        id=new_id("workspace"),
        account_id=account_id,
        name=name,
        description=description,
        external_id=external_id,
        labels=labels or {},
        creator_profile_id=creator_profile_id,
    )
    session.add(workspace)
    return workspace


def _conditions(where: WorkspaceFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [Workspace.account_id == where.account_id]
    if not where.include_archived:
        conditions.append(Workspace.status != ARCHIVED)
    for key, value in where.labels.items():
        conditions.append(Workspace.labels[key].as_string() == value)
    if where.member_profile_id is not None:
        conditions.append(
            Workspace.id.in_(
                select(WorkspaceMember.workspace_id).where(
                    WorkspaceMember.profile_id == where.member_profile_id
                )
            )
        )
    if where.name is not None:
        conditions.append(Workspace.name == where.name)
    if where.external_id is not None:
        conditions.append(Workspace.external_id == where.external_id)
    if where.api_key_id is not None:
        conditions.append(
            Workspace.id.in_(
                select(ApiKeyWorkspace.workspace_id).where(
                    ApiKeyWorkspace.api_key_id == where.api_key_id
                )
            )
        )
    return conditions


def page(
    session: Session,
    where: WorkspaceFilter,
    *,
    after: str | None,
    limit: int,
    descending: bool = False,
    offset: int = 0,
) -> list[Workspace]:
    """Up to `limit` matches in id (creation) order, starting after the id `after` (and
    past `offset` more: SCIM pages by index)."""
    statement = select(Workspace).where(*_conditions(where))
    if after is not None:
        statement = statement.where(Workspace.id < after if descending else Workspace.id > after)
    order = Workspace.id.desc() if descending else Workspace.id
    return list(session.scalars(statement.order_by(order).offset(offset).limit(limit)))


def count(session: Session, where: WorkspaceFilter) -> int:
    return session.scalar(select(func.count()).select_from(Workspace).where(*_conditions(where)))


def lock_active_ids(session: Session, *, account_id: str) -> list[str]:
    """The account's active workspace ids, row-locked until the transaction ends.

    Two archives racing for the last two workspaces then queue here, and the
    second one counts what the first left behind.
    """
    return list(
        session.scalars(
            select(Workspace.id)
            .where(Workspace.account_id == account_id, Workspace.status != ARCHIVED)
            .order_by(Workspace.id)
            .with_for_update()
        )
    )


def key_reaches_all(session: Session, *, api_key_id: str) -> bool:
    """Whether an API key is granted every workspace of its account."""
    return bool(session.scalar(select(ApiKey.all_workspaces).where(ApiKey.id == api_key_id)))


# Read on every GET /v1/account: built once, read as plain rows (see bench/README.md).
_TABLE = Workspace.__table__.c
_ACTIVE = (
    select(Workspace.__table__)
    .where(_TABLE.account_id == bindparam("account_id"), _TABLE.status != ARCHIVED)
    .order_by(_TABLE.id)
)


def list_active(session: Session, *, account_id: str) -> Sequence[Row[Any]]:
    """The account's workspaces that are not archived, oldest first, as plain rows."""
    return session.execute(_ACTIVE, {"account_id": account_id}).all()


def get(session: Session, *, account_id: str, workspace_id: str) -> Workspace | None:
    """A workspace of this account (archived ones included), or None."""
    return session.scalars(
        select(Workspace).where(Workspace.id == workspace_id, Workspace.account_id == account_id)
    ).one_or_none()


def by_ids(session: Session, *, account_id: str, workspace_ids: Iterable[str]) -> list[Workspace]:
    """These workspaces of this account, any status; ids of other accounts are left out."""
    return list(
        session.scalars(
            select(Workspace).where(
                Workspace.account_id == account_id, Workspace.id.in_(list(workspace_ids))
            )
        )
    )
