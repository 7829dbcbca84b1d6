"""Workspaces: create, read, update and archive, and the listings of who reaches what."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from cadenya_server.audit import service as audit
from cadenya_server.auth.caller import Caller
from cadenya_server.kit import labels as label_rules
from cadenya_server.kit import quotas, update_mask
from cadenya_server.kit.clock import now
from cadenya_server.kit.errors import (
    FailedPrecondition,
    NotFound,
    PermissionDenied,
)
from cadenya_server.kit.pagination import PageRequest, id_page, scope_of
from cadenya_server.kit.schemas import Pagination
from cadenya_server.models import Workspace as WorkspaceRow
from cadenya_server.workspaces import repository
from cadenya_server.workspaces.schemas import (
    UPDATABLE,
    CreateWorkspaceRequest,
    SortOrder,
    UpdateWorkspaceRequest,
    Workspace,
    WorkspaceList,
    WorkspaceSpecInput,
)

ACTIVE_WORKSPACES = quotas.Quota(
    "active workspaces", "CADENYA_SERVER_MAX_WORKSPACES_PER_ACCOUNT", "archive one to make room"
)


def _page(
    *,
    session: Session,
    where: repository.WorkspaceFilter,
    scope: str,
    page: PageRequest,
    descending: bool = False,
) -> WorkspaceList:
    rows, next_cursor = id_page(
        page,
        scope=scope,
        fetch=lambda after, n: repository.page(
            session, where, after=after, limit=n, descending=descending
        ),
    )
    return WorkspaceList(
        items=[Workspace.of(w) for w in rows],
        pagination=Pagination(next_cursor=next_cursor, total=repository.count(session, where)),
    )


def list_account(
    *,
    session: Session,
    caller: Caller,
    page: PageRequest,
    include_archived: bool,
    labels: str | None,
) -> WorkspaceList:
    """One page of the account's workspaces, oldest first."""
    where = repository.WorkspaceFilter(
        account_id=caller.account_id,
        include_archived=include_archived,
        labels=label_rules.parse_filter(labels),
    )
    scope = scope_of(
        "workspaces.list_account",
        where.account_id,
        where.include_archived,
        sorted(where.labels.items()),
    )
    return _page(session=session, page=page, where=where, scope=scope)


def list_reachable(
    *,
    session: Session,
    caller: Caller,
    page: PageRequest,
    labels: str | None,
    sort_order: SortOrder,
) -> WorkspaceList:
    """One page of the active workspaces the caller can work in."""
    where = _reachable_by(session, caller, labels=label_rules.parse_filter(labels))
    # The cursor belongs to this caller: another caller may reach other workspaces.
    scope = scope_of(
        "workspaces.list",
        caller.account_id,
        caller.profile_id,
        sort_order,
        sorted(where.labels.items()),
    )
    return _page(
        session=session,
        page=page,
        where=where,
        scope=scope,
        descending=sort_order is SortOrder.DESC,
    )


def list_member_of(
    *, session: Session, caller: Caller, profile_id: str, page: PageRequest
) -> WorkspaceList:
    """One page of the active workspaces a profile of the caller's account is a member of,
    oldest first (the profile is the caller's to check)."""
    where = repository.WorkspaceFilter(account_id=caller.account_id, member_profile_id=profile_id)
    scope = scope_of("workspaces.member_of", caller.account_id, profile_id)
    return _page(session=session, page=page, where=where, scope=scope)


def _reachable_by(
    session: Session, caller: Caller, *, labels: dict[str, str]
) -> repository.WorkspaceFilter:
    """Administrators reach every workspace, a key its assignments, a user its memberships."""
    everything = repository.WorkspaceFilter(account_id=caller.account_id, labels=labels)
    if caller.is_admin:
        return everything
    if caller.api_key_id:
        if repository.key_reaches_all(session, api_key_id=caller.api_key_id):
            return everything
        return replace(everything, api_key_id=caller.api_key_id)
    return replace(everything, member_profile_id=caller.profile_id)


def default_for(*, session: Session, caller: Caller) -> WorkspaceRow | None:
    """The oldest active workspace the caller reaches: where whoami says it lands."""
    rows = repository.page(session, _reachable_by(session, caller, labels={}), after=None, limit=1)
    return rows[0] if rows else None


def find(*, session: Session, caller: Caller, workspace_id: str) -> WorkspaceRow:
    """A workspace of the caller's account, archived or not; 404 otherwise."""
    row = repository.get(session, account_id=caller.account_id, workspace_id=workspace_id)
    if row is None:
        raise NotFound(f"workspace {workspace_id!r} not found")
    return row


def find_active(*, session: Session, caller: Caller, workspace_id: str) -> WorkspaceRow:
    """A workspace that calls may still change; an archived one is 403."""
    row = find(session=session, caller=caller, workspace_id=workspace_id)
    if row.status == repository.ARCHIVED:
        raise PermissionDenied(f"workspace {workspace_id!r} is archived")
    return row


def get(*, session: Session, caller: Caller, workspace_id: str) -> Workspace:
    """A workspace of the caller's account, archived ones included."""
    return Workspace.of(find(session=session, caller=caller, workspace_id=workspace_id))


def create(
    *, session: Session, caller: Caller, body: CreateWorkspaceRequest, max_active: int
) -> Workspace:
    """A new, enabled workspace; 400 when the account has `max_active` active ones."""
    ACTIVE_WORKSPACES.require_room(
        session,
        account_id=caller.account_id,
        limit=max_active,
        count=lambda: repository.count(
            session, repository.WorkspaceFilter(account_id=caller.account_id)
        ),
    )
    row = repository.add(
        session,
        account_id=caller.account_id,
        name=body.metadata.name,
        description=body.spec.description,
        external_id=body.metadata.external_id,
        labels=label_rules.validate(body.metadata.labels),
        creator_profile_id=caller.profile_id,
    )
    session.flush()
    created = Workspace.of(row)
    audit.record(
        session, caller=caller, action="workspace.create", resource_id=row.id, resource=created
    )
    return created


def update(
    *, session: Session, caller: Caller, workspace_id: str, body: UpdateWorkspaceRequest
) -> Workspace:
    """Change the fields the update mask names (or, without one, those in the body)."""
    paths = update_mask.paths(body.update_mask, body, allowed=UPDATABLE)
    row = find_active(session=session, caller=caller, workspace_id=workspace_id)
    spec = body.spec or WorkspaceSpecInput()
    update_mask.apply_metadata(row, body.metadata, paths)
    if "spec.description" in paths:
        row.description = spec.description
    if paths:
        audit.record(
            session,
            caller=caller,
            action="workspace.update",
            resource_id=row.id,
            details={"fields": sorted(paths)},
            resource=Workspace.of(row),
        )
    return Workspace.of(row)


def archive(*, session: Session, caller: Caller, workspace_id: str) -> None:
    """Archive a workspace; archiving an archived one changes nothing."""
    row = find(session=session, caller=caller, workspace_id=workspace_id)
    if row.status == repository.ARCHIVED:
        return
    active = repository.lock_active_ids(session, account_id=caller.account_id)
    if row.id not in active:
        # Archived by a concurrent call while this one waited for the lock.
        return
    if len(active) == 1:
        raise FailedPrecondition(
            "this is the account's last active workspace; create another before archiving it"
        )
    row.status = repository.ARCHIVED
    row.archived_at = now()
    audit.record(
        session,
        caller=caller,
        action="workspace.archive",
        resource_id=row.id,
        resource=Workspace.of(row),
    )


# --- For the other features ------------------------------------------------------------


def active_page(
    *,
    session: Session,
    caller: Caller,
    offset: int,
    limit: int,
    name: str | None = None,
    external_id: str | None = None,
) -> tuple[list[WorkspaceRow], int]:
    """The account's active workspaces (with this name or external id, if given) from
    `offset` in creation order, and how many there are: SCIM's Groups."""
    where = repository.WorkspaceFilter(
        account_id=caller.account_id, name=name, external_id=external_id
    )
    rows = repository.page(session, where, after=None, limit=limit, offset=offset)
    return rows, repository.count(session, where)


ARCHIVED = repository.ARCHIVED


def add_row(
    *, session: Session, account_id: str, name: str, creator_profile_id: str
) -> WorkspaceRow:
    """A new workspace (an account's first), already checked."""
    return repository.add(
        session, account_id=account_id, name=name, creator_profile_id=creator_profile_id
    )


def active_rows(*, session: Session, account_id: str) -> Sequence[Row[Any]]:
    """The account's workspaces that are not archived, oldest first, as plain rows."""
    return repository.list_active(session, account_id=account_id)


def find_row(*, session: Session, account_id: str, workspace_id: str) -> WorkspaceRow | None:
    """A workspace of this account (archived ones included), or None."""
    return repository.get(session, account_id=account_id, workspace_id=workspace_id)


def rows_by_ids(
    *, session: Session, account_id: str, workspace_ids: Iterable[str]
) -> list[WorkspaceRow]:
    """These workspaces of this account, any status; ids of other accounts are left out."""
    return repository.by_ids(session, account_id=account_id, workspace_ids=workspace_ids)
