"""Profile search and whoami."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from cadenya_server.auth.dependencies import AdminCaller, AnyCaller
from cadenya_server.kit.params import Cursor, LabelFilter, Limit
from cadenya_server.kit.runtime import AppRuntime, DbSession
from cadenya_server.profiles import service
from cadenya_server.profiles.schemas import ProfileList, ProfileType, WhoamiResponse

router = APIRouter(prefix="/v1", tags=["Profiles"])


@router.get(
    "/account/profiles", operation_id="workspaceAdmin.listProfiles", response_model=ProfileList
)
def search_profiles(
    caller: AdminCaller,
    session: DbSession,
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
    found = service.search(
        session=session,
        cursors=runtime.cursors,
        caller=caller,
        query=query,
        cursor=cursor,
        limit=limit,
        type=type,
        labels=labels,
    )
    # Serialized here, in this thread: FastAPI would check the model it was handed in
    # another trip to the thread pool first, a tenth of a millisecond for nothing.
    return Response(found.model_dump_json(by_alias=True), media_type="application/json")


@router.get("/whoami", operation_id="profiles.whoami")
def whoami(caller: AnyCaller, session: DbSession) -> WhoamiResponse:
    """Retrieves the profile for the credentials accessing the API."""
    return service.whoami(session=session, caller=caller)
