"""Profile search and whoami."""

from __future__ import annotations

from sqlalchemy.orm import Session

from cadenya_server.auth.caller import Caller
from cadenya_server.kit.errors import NotFound
from cadenya_server.kit.labels import parse_filter
from cadenya_server.kit.pagination import Cursors, page_size, scope_of
from cadenya_server.kit.schemas import AccountResourceMetadata
from cadenya_server.profiles import repository, text
from cadenya_server.profiles.schemas import (
    STORED_TYPES,
    Profile,
    ProfileList,
    ProfileType,
    WhoamiResponse,
)
from cadenya_server.workspaces import service as workspaces
from cadenya_server.workspaces.schemas import Workspace


def search(
    *,
    session: Session,
    cursors: Cursors,
    caller: Caller,
    query: str,
    cursor: str,
    limit: int | None,
    type: ProfileType | None,
    labels: str | None,
) -> bytes:
    """One page of the account's profiles matching a search, with the exact total, as the
    JSON of a ProfileList."""
    size = page_size(limit)
    search = repository.SearchFilter(
        account_id=caller.account_id,
        needle=query.lower(),
        type=STORED_TYPES.get(type) if type else None,
        labels=parse_filter(labels),
    )
    scope = scope_of(
        "profiles.search",
        search.account_id,
        search.needle,
        search.type,
        sorted(search.labels.items()),
    )
    after: tuple[str, str] | None = None
    total: int | None = None
    if cursor:
        position = cursors.decode(cursor, scope=scope)
        after, total = (position["n"], position["i"]), position["t"]
    if text.has_control(search.needle):
        # Stored names and emails never hold control characters.
        return ProfileList.render([], next_cursor="", total=0)
    if total is None:
        # Counted on the first page only; later pages carry it in the cursor.
        total = repository.search_count(session, search)
    rows = repository.search_page(session, search, after=after, limit=size + 1, total=total)
    next_cursor = ""
    if len(rows) > size:
        rows = rows[:size]
        last = rows[-1]
        next_cursor = cursors.encode({"n": last.name_key, "i": last.id, "t": total}, scope=scope)
    return ProfileList.render(rows, next_cursor=next_cursor, total=total)


def whoami(*, session: Session, caller: Caller) -> WhoamiResponse:
    """The caller's profile and the workspace it lands in by default."""
    row = repository.get(session, account_id=caller.account_id, profile_id=caller.profile_id)
    if row is None:
        raise NotFound("the caller's profile no longer exists")
    workspace = workspaces.default_for(session=session, caller=caller)
    return WhoamiResponse(
        profile=Profile.of(row),
        default_workspace=(
            Workspace.of(workspace).metadata if workspace else AccountResourceMetadata.empty()
        ),
    )
