"""Query parameters every list call shares, declared once."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

Cursor = Annotated[str, Query(max_length=2048, description="nextCursor of the previous page")]
Limit = Annotated[int | None, Query(description="Page size: 0 or absent is 50, at most 1000")]
LabelFilter = Annotated[
    str | None,
    Query(max_length=4096, description="key=value pairs joined by commas; all must match"),
]
