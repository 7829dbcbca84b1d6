"""Workspace members: who may work in a workspace, each through one actor."""

from __future__ import annotations

from sqlalchemy.orm import Session

from cadenya_server.audit import service as audit
from cadenya_server.auth.caller import Caller
from cadenya_server.kit.errors import FailedPrecondition, NotFound
from cadenya_server.kit.pagination import PageRequest, id_page, scope_of
from cadenya_server.kit.schemas import Pagination
from cadenya_server.members import repository
from cadenya_server.members.schemas import (
    AddMemberRequest,
    WorkspaceMember,
    WorkspaceMemberEvent,
    WorkspaceMemberList,
)
from cadenya_server.models import Profile as ProfileRow
from cadenya_server.profiles import service as profiles
from cadenya_server.workspaces import service as workspaces


def list_members(
    *,
    session: Session,
    caller: Caller,
    workspace_id: str,
    page: PageRequest,
) -> WorkspaceMemberList:
    """One page of a workspace's members, in the order they were added."""
    workspace = workspaces.find_active(session=session, caller=caller, workspace_id=workspace_id)
    rows, next_cursor = id_page(
        page,
        scope=scope_of("members.list", caller.account_id, workspace.id),
        fetch=lambda after, n: repository.page(
            session, workspace_id=workspace.id, after=after, limit=n
        ),
        id_of=lambda row: row[0].id,
    )
    return WorkspaceMemberList(
        items=[WorkspaceMember.of(member, profile) for member, profile in rows],
        pagination=Pagination(
            next_cursor=next_cursor, total=repository.count(session, workspace_id=workspace.id)
        ),
    )


def add(
    *,
    session: Session,
    caller: Caller,
    workspace_id: str,
    body: AddMemberRequest,
    max_profiles: int,
) -> WorkspaceMember:
    """Make a profile (found by id, or by email and invited if new) a member; idempotent."""
    profile_id, email = body.profile_id, body.email
    workspace = workspaces.find_active(session=session, caller=caller, workspace_id=workspace_id)
    if profile_id:
        profile = profiles.find_row(
            session=session, account_id=caller.account_id, profile_id=profile_id
        )
        if profile is None:
            raise NotFound(f"profile {profile_id!r} not found")
        if profile.type == "api_key":
            raise FailedPrecondition(
                "API keys reach workspaces through their assignments "
                "(POST /v1/account/api_keys/{id}:addWorkspace), not as members"
            )
    else:
        profile = profiles.invite(
            session=session, caller=caller, email=email, max_profiles=max_profiles
        )
    member, created = repository.add(
        session,
        account_id=caller.account_id,
        workspace_id=workspace.id,
        profile_id=profile.id,
        creator_profile_id=caller.profile_id,
    )
    if created:
        audit.record(
            session,
            caller=caller,
            action="workspace.member.add",
            resource_id=workspace.id,
            details={"profileId": profile.id, "actorId": member.id},
            resource=WorkspaceMemberEvent(
                **WorkspaceMember.of(member, profile).model_dump(), workspace_id=workspace.id
            ),
        )
    return WorkspaceMember.of(member, profile)


def remove(*, session: Session, caller: Caller, workspace_id: str, profile_id: str) -> None:
    """Take a profile out of a workspace; the profile itself stays."""
    workspace = workspaces.find_active(session=session, caller=caller, workspace_id=workspace_id)
    member = repository.get(session, workspace_id=workspace.id, profile_id=profile_id)
    if member is None:
        raise NotFound(f"profile {profile_id!r} is not a member of this workspace")
    profile = profiles.find_row(
        session=session, account_id=caller.account_id, profile_id=profile_id
    )
    before = (
        WorkspaceMemberEvent(
            **WorkspaceMember.of(member, profile).model_dump(), workspace_id=workspace.id
        )
        if profile is not None
        else None
    )
    repository.remove(session, member)
    audit.record(
        session,
        caller=caller,
        action="workspace.member.remove",
        resource_id=workspace.id,
        details={"profileId": profile_id, "actorId": member.id},
        resource=before,
    )


def profiles_in(*, session: Session, caller: Caller, workspace_id: str) -> list[ProfileRow]:
    """Every member's profile of an active workspace (SCIM's Group members)."""
    workspace = workspaces.find_active(session=session, caller=caller, workspace_id=workspace_id)
    return repository.profiles_of(session, workspace_id=workspace.id)
