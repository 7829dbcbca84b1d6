"""/v1/account/workspaces/{workspaceId}/members."""

from __future__ import annotations

from fastapi import APIRouter

from cadenya_server.kit.params import Page, path_id
from cadenya_server.kit.runtime import AppRuntime, DbSession
from cadenya_server.kit.schemas import Empty
from cadenya_server.members import service
from cadenya_server.members.schemas import AddMemberRequest, WorkspaceMember, WorkspaceMemberList
from cadenya_server.workspaces.auth import WorkspaceId, WorkspacesManager, WorkspacesReader

router = APIRouter(prefix="/v1/account/workspaces/{workspaceId}/members", tags=["Workspaces"])

MemberId = path_id("profile", alias="profileId", description="The member's profile_… id")


@router.get("", operation_id="workspaceAdmin.listMembers")
def list_members(
    caller: WorkspacesReader,
    session: DbSession,
    page: Page,
    workspace_id: WorkspaceId,
) -> WorkspaceMemberList:
    """Lists a workspace's members in the order they were added."""
    return service.list_members(
        session=session,
        caller=caller,
        workspace_id=workspace_id,
        page=page,
    )


@router.post("", operation_id="workspaceAdmin.addMember")
def add_member(
    caller: WorkspacesManager,
    session: DbSession,
    runtime: AppRuntime,
    workspace_id: WorkspaceId,
    body: AddMemberRequest,
) -> WorkspaceMember:
    """Adds a member, by `profileId` or by `email` (exactly one).

    An email that matches no profile of the account invites a new user profile with
    role member (400 FAILED_PRECONDITION when the account holds its limit of profiles).
    Adding a member again returns the existing member, same `actorId`.
    """
    return service.add(
        session=session,
        caller=caller,
        workspace_id=workspace_id,
        body=body,
        max_profiles=runtime.settings.max_profiles_per_account,
    )


@router.delete("/{profileId}", operation_id="workspaceAdmin.removeMember")
def remove_member(
    caller: WorkspacesManager,
    session: DbSession,
    workspace_id: WorkspaceId,
    profile_id: MemberId,
) -> Empty:
    """Removes a member from a workspace; the profile itself stays."""
    service.remove(session=session, caller=caller, workspace_id=workspace_id, profile_id=profile_id)
    return Empty()
