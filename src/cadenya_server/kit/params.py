"""Parameters many calls share, declared once."""

from __future__ import annotations

from typing import Annotated

from fastapi import Body, Query

from cadenya_server.kit.schemas import EmptyRequest

Cursor = Annotated[str, Query(max_length=2048, description="nextCursor of the previous page")]
Limit = Annotated[int | None, Query(description="Page size: 0 or absent is 50, at most 1000")]
LabelFilter = Annotated[
    str | None,
    Query(max_length=4096, description="key=value pairs joined by commas; all must match"),
]
# The body of an action that takes no arguments: none, or an empty JSON object.
NoBody = Annotated[EmptyRequest | None, Body()]
