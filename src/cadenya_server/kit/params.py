"""Parameters many calls share, declared once."""

from __future__ import annotations

from typing import Annotated

from fastapi import Body, Depends, Query

from cadenya_server.kit.pagination import PageRequest
from cadenya_server.kit.runtime import AppRuntime
from cadenya_server.kit.schemas import EmptyRequest

Cursor = Annotated[str, Query(max_length=2048, description="nextCursor of the previous page")]
Limit = Annotated[int | None, Query(description="Page size: 0 or absent is 50, at most 1000")]
LabelFilter = Annotated[
    str | None,
    Query(max_length=4096, description="key=value pairs joined by commas; all must match"),
]
# The body of an action that takes no arguments: none, or an empty JSON object.
NoBody = Annotated[EmptyRequest | None, Body()]


# async: trivial work need not hop to the thread pool as sync dependencies do.
async def _page_request(
    runtime: AppRuntime, cursor: Cursor = "", limit: Limit = None
) -> PageRequest:
    return PageRequest(cursors=runtime.cursors, cursor=cursor, limit=limit)


# The cursor and limit of a list call, with the codec of cursors.
Page = Annotated[PageRequest, Depends(_page_request)]
