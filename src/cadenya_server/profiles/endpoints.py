"""Profile search and whoami."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy.orm import Session

from cadenya_server.auth.dependencies import AdminCredentials, AnyCaller
from cadenya_server.kit.params import Cursor, LabelFilter, Limit
from cadenya_server.kit.runtime import AppRuntime, DbSession
from cadenya_server.profiles import service
from cadenya_server.profiles.schemas import ProfileList, ProfileType, WhoamiResponse

router = APIRouter(prefix="/v1", tags=["Profiles"])


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

    # The transaction, the caller and the page in one trip to the thread pool, the
    # JSON too: as dependencies and a returned model they took five, a millisecond
    # of every call at the end of a member picker's keystroke.
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
