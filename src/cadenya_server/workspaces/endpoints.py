"""/v1/account/workspaces (administration) and /v1/workspaces (what the caller reaches)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from cadenya_server.kit.params import LabelFilter, Page
from cadenya_server.kit.runtime import AppRuntime, DbSession
from cadenya_server.kit.schemas import Empty
from cadenya_server.workspaces import service
from cadenya_server.workspaces.auth import WorkspaceId, WorkspacesManager, WorkspacesReader
from cadenya_server.workspaces.schemas import (
    CreateWorkspaceRequest,
    SortOrder,
    UpdateWorkspaceRequest,
    Workspace,
    WorkspaceList,
)

router = APIRouter(prefix="/v1", tags=["Workspaces"])


@router.get("/account/workspaces", operation_id="workspaceAdmin.listAccount")
def list_account_workspaces(
    caller: WorkspacesReader,
    session: DbSession,
    page: Page,
    include_archived: Annotated[
        bool, Query(alias="includeArchived", description="Also list archived workspaces")
    ] = False,
    labels: LabelFilter = None,
) -> WorkspaceList:
    """Lists the account's workspaces, oldest first."""
    return service.list_account(
        session=session,
        caller=caller,
        page=page,
        include_archived=include_archived,
        labels=labels,
    )


@router.post("/account/workspaces", operation_id="workspaceAdmin.create")
def create_workspace(
    caller: WorkspacesManager, session: DbSession, runtime: AppRuntime, body: CreateWorkspaceRequest
) -> Workspace:
    """Creates a workspace; 400 FAILED_PRECONDITION when the account holds its limit of
    active workspaces."""
    return service.create(
        session=session,
        caller=caller,
        body=body,
        max_active=runtime.settings.max_workspaces_per_account,
    )


@router.get("/account/workspaces/{workspaceId}", operation_id="workspaceAdmin.retrieve")
def get_workspace(
    caller: WorkspacesReader, session: DbSession, workspace_id: WorkspaceId
) -> Workspace:
    """Gets a workspace by id, archived ones included."""
    return service.get(session=session, caller=caller, workspace_id=workspace_id)


@router.patch("/account/workspaces/{workspaceId}", operation_id="workspaceAdmin.update")
def update_workspace(
    caller: WorkspacesManager,
    session: DbSession,
    workspace_id: WorkspaceId,
    body: UpdateWorkspaceRequest,
) -> Workspace:
    """Updates the fields named by `updateMask` (without one, the fields present in the body).

    An archived workspace can no longer be changed (403).
    """
    return service.update(session=session, caller=caller, workspace_id=workspace_id, body=body)


@router.delete("/account/workspaces/{workspaceId}", operation_id="workspaceAdmin.archive")
def archive_workspace(
    caller: WorkspacesManager, session: DbSession, workspace_id: WorkspaceId
) -> Empty:
    """Archives a workspace: it leaves the account's workspace lists but can still be read.

    Archiving the account's last active workspace is refused (400 FAILED_PRECONDITION);
    archiving an archived workspace changes nothing.
    """
    service.archive(session=session, caller=caller, workspace_id=workspace_id)
    return Empty()


@router.get("/workspaces", operation_id="workspaces.list")
def list_workspaces(
    caller: WorkspacesReader,
    session: DbSession,
    page: Page,
    labels: LabelFilter = None,
    sort_order: Annotated[
        SortOrder, Query(alias="sortOrder", description="By creation time; default asc")
    ] = SortOrder.ASC,
    _include_info: Annotated[
        bool,
        Query(
            alias="includeInfo",
            description="Accepted for compatibility: `info` is always present, and its "
            "counts are 0 because this server does not host agents, tools or memory.",
        ),
    ] = False,
) -> WorkspaceList:
    """Lists the active workspaces the caller can work in.

    Administrators and API keys granted every workspace see all of them, other API
    keys the workspaces they are assigned to, and users the workspaces they are a
    member of.
    """
    return service.list_reachable(
        session=session,
        caller=caller,
        page=page,
        labels=labels,
        sort_order=sort_order,
    )
