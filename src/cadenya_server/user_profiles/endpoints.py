"""/v1/account/profiles: adding, changing and removing user profiles (not in the client)."""

from __future__ import annotations

from fastapi import APIRouter

from cadenya_server.auth.dependencies import AdminCaller
from cadenya_server.kit.params import path_id
from cadenya_server.kit.runtime import DbSession
from cadenya_server.kit.schemas import Empty
from cadenya_server.user_profiles import service
from cadenya_server.user_profiles.schemas import (
    CreateUserProfileRequest,
    UpdateUserProfileRequest,
    UserProfile,
)

router = APIRouter(prefix="/v1/account/profiles", tags=["Profiles"])

ProfileId = path_id("profile", alias="profileId")


@router.post("", operation_id="accountProfiles.create", summary="Add a user profile")
def create_profile(
    caller: AdminCaller, session: DbSession, body: CreateUserProfileRequest
) -> UserProfile:
    """Adds a person to the account. Administrators only.

    Body: `{"metadata": {"name", "externalId", "labels"}, "spec": {"email", "name", "role"}}`.
    `spec.email` is required and unique in the account, compared case-insensitively
    (409 ALREADY_EXISTS otherwise). `spec.name` and `metadata.name` are the same field:
    give either, or both with the same value. `spec.role` is `admin` or `member`
    (default `member`): admins hold every permission, members may read the account
    and its workspaces.
    """
    return service.create(session=session, caller=caller, body=body)


@router.get("/{profileId}", operation_id="accountProfiles.retrieve", summary="Get a profile")
def get_profile(caller: AdminCaller, session: DbSession, profile_id: ProfileId) -> UserProfile:
    """Gets any profile of the account (user, API key or system), with `spec.role`.

    Administrators only.
    """
    return service.get(session=session, caller=caller, profile_id=profile_id)


@router.patch("/{profileId}", operation_id="accountProfiles.update", summary="Update a profile")
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


@router.delete("/{profileId}", operation_id="accountProfiles.delete", summary="Remove a profile")
def delete_profile(caller: AdminCaller, session: DbSession, profile_id: ProfileId) -> Empty:
    """Removes a user profile and its workspace memberships. Administrators only.

    The account's last administrator cannot be removed, nor the profile of an API key
    (delete the key instead): both are 400 FAILED_PRECONDITION.
    """
    service.delete(session=session, caller=caller, profile_id=profile_id)
    return Empty()
