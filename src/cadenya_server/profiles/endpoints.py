"""/v1/account/profiles (the search; adding, changing and removing user profiles) and whoami."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy.orm import Session

from cadenya_server.auth.dependencies import AdminCaller, AdminCredentials, AnyCaller
from cadenya_server.kit.params import Cursor, LabelFilter, Limit, Page, path_id
from cadenya_server.kit.runtime import AppRuntime, DbSession
from cadenya_server.kit.schemas import Empty
from cadenya_server.profiles import service
from cadenya_server.profiles.schemas import (
    CreateUserProfileRequest,
    ProfileList,
    ProfileType,
    UpdateUserProfileRequest,
    UserProfile,
    WhoamiResponse,
)
from cadenya_server.workspaces.schemas import WorkspaceList

router = APIRouter(prefix="/v1", tags=["Profiles"])

ProfileId = path_id("profile", alias="profileId")


@router.get(
    "/account/profiles", operation_id="workspaceAdmin.listProfiles", response_model=ProfileList
)
async def search_profiles(
    presented: AdminCredentials,
    runtime: AppRuntime,
    query: Annotated[
        str,
        Query(
            max_length=200,
            description="Case-insensitive substring of the name or email; empty matches all.",
        ),
    ] = "",
    cursor: Cursor = "",
    limit: Limit = None,
    type: Annotated[ProfileType | None, Query(description="Only profiles of this type")] = None,
    labels: LabelFilter = None,
) -> Response:
    """Searches the account's profiles for a member picker. Administrators only."""

    # Against the house's conventions on purpose: the member picker calls this on every
    # keystroke, so it checks the raw credentials in a transaction of its own and
    # returns the JSON the service wrote, one trip to the thread pool where a session
    # dependency, a caller dependency and a returned model take five (bench/README.md).
    def search(session: Session) -> bytes:
        return service.search(
            session=session,
            cursors=runtime.cursors,
            caller=presented.caller(session=session, runtime=runtime),
            query=query,
            cursor=cursor,
            limit=limit,
            type=type,
            labels=labels,
        )

    page = await runtime.db.run(search, write=False, statements_alone=True)
    return Response(page, media_type="application/json")


@router.get("/whoami", operation_id="profiles.whoami")
def whoami(caller: AnyCaller, session: DbSession) -> WhoamiResponse:
    """Retrieves the profile for the credentials accessing the API."""
    return service.whoami(session=session, caller=caller)


@router.post(
    "/account/profiles", operation_id="accountProfiles.create", summary="Add a user profile"
)
def create_profile(
    caller: AdminCaller, session: DbSession, runtime: AppRuntime, body: CreateUserProfileRequest
) -> UserProfile:
    """Adds a person to the account. Administrators only.

    Body: `{"metadata": {"name", "externalId", "labels"}, "spec": {"email", "name", "role"}}`.
    `spec.email` is required and unique in the account, compared case-insensitively
    (409 ALREADY_EXISTS otherwise). `spec.name` and `metadata.name` are the same field:
    give either, or both with the same value. `spec.role` is `admin` or `member`
    (default `member`): admins hold every permission, members may read the account
    and its workspaces. 400 FAILED_PRECONDITION when the account holds its limit of
    profiles.
    """
    return service.create(
        session=session,
        caller=caller,
        body=body,
        max_profiles=runtime.settings.max_profiles_per_account,
    )


@router.get(
    "/account/profiles/{profileId}",
    operation_id="accountProfiles.retrieve",
    summary="Get a profile",
)
def get_profile(caller: AdminCaller, session: DbSession, profile_id: ProfileId) -> UserProfile:
    """Gets any profile of the account (user, API key or system), with `spec.role`.

    Administrators only.
    """
    return service.get(session=session, caller=caller, profile_id=profile_id)


@router.get(
    "/account/profiles/{profileId}/workspaces",
    operation_id="accountProfiles.listWorkspaces",
    summary="List a profile's workspaces",
)
def list_profile_workspaces(
    caller: AdminCaller, session: DbSession, profile_id: ProfileId, page: Page
) -> WorkspaceList:
    """Lists the active workspaces a profile is a member of, oldest first (an API key's
    workspaces are its assignments: GET /v1/account/api_keys/{id}). Administrators only."""
    return service.workspaces_of(session=session, caller=caller, profile_id=profile_id, page=page)


@router.patch(
    "/account/profiles/{profileId}",
    operation_id="accountProfiles.update",
    summary="Update a profile",
)
def update_profile(
    caller: AdminCaller, session: DbSession, profile_id: ProfileId, body: UpdateUserProfileRequest
) -> UserProfile:
    """Changes a profile's name, external id, labels or role. Administrators only.

    Body: `{"metadata": {"name", "externalId", "labels"}, "spec": {"name", "role"},
    "updateMask": "spec.role,metadata.labels"}`. With `updateMask`, exactly the named
    fields change (a named field missing from the body is cleared); without it, the
    fields present in the body change. The email cannot be changed. Demoting the
    account's last administrator is refused (400 FAILED_PRECONDITION), and profiles of
    API keys are managed under /v1/account/api_keys instead.
    """
    return service.update(session=session, caller=caller, profile_id=profile_id, body=body)


@router.delete(
    "/account/profiles/{profileId}",
    operation_id="accountProfiles.delete",
    summary="Remove a profile",
)
def delete_profile(caller: AdminCaller, session: DbSession, profile_id: ProfileId) -> Empty:
    """Removes a user profile and its workspace memberships. Administrators only.

    The account's last administrator cannot be removed, nor the profile of an API key
    (delete the key instead): both are 400 FAILED_PRECONDITION.
    """
    service.delete(session=session, caller=caller, profile_id=profile_id)
    return Empty()
