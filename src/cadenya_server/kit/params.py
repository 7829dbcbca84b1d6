"""Parameters declared once: the query parameters every list call shares, and ids.

An id parameter carries its prefixed-ULID shape, so FastAPI refuses a malformed one
before any database work, and the OpenAPI document states the shape. A malformed id
in the path is answered 404 (kit.http), in the query 400.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query

from cadenya_server.kit import ids, labels

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
