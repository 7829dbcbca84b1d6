"""Parameters many calls share, declared once: pages, label filters, empty bodies, ids.

An id parameter carries its prefixed-ULID shape, so FastAPI refuses a malformed one
before any database work, and the OpenAPI document states the shape. A malformed id
in the path is answered 404 (kit.http), in the query 400.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, Depends, Path, Query

from cadenya_server.kit import ids, labels
from cadenya_server.kit.pagination import PageRequest
from cadenya_server.kit.runtime import AppRuntime
from cadenya_server.kit.schemas import EmptyRequest

Cursor = Annotated[str, Query(max_length=2048, description="nextCursor of the previous page")]
# A negative limit is refused by kit.pagination.page_size, in words of its own.
Limit = Annotated[
    int | None,
    Query(
        description="Page size: 0 or absent is 50, above 1000 is 1000",
        json_schema_extra={"minimum": 0},
    ),
]
LabelFilter = Annotated[
    str | None,
    Query(
        max_length=4096,
        description="key=value pairs joined by commas; all must match",
        json_schema_extra={"pattern": labels.FILTER_PATTERN},
    ),
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


def path_id(prefix: str, *, alias: str, description: str = "") -> Any:
    """The type of a `{prefix}_…` id in the path."""
    return Annotated[
        str,
        Path(
            alias=alias,
            pattern=ids.pattern(prefix),
            min_length=ids.length(prefix),
            max_length=ids.length(prefix),
            description=description or f"A {prefix}_… id",
        ),
    ]


def query_id(prefix: str, *, alias: str, description: str) -> Any:
    """The type of an optional `{prefix}_…` id in the query; empty is the same as absent."""
    return Annotated[
        str,
        Query(
            alias=alias,
            pattern=f"^({ids.pattern(prefix)[1:-1]})?$",
            max_length=ids.length(prefix),
            description=description,
        ),
    ]
