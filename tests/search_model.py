"""The profile search as plain Python, and walking its pages over HTTP.

The search tests compare the server with this brute-force model over the same
rows, so whatever the server does inside, it must agree with a list
comprehension.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import select

from cadenya_server.models import Profile
from cadenya_server.profiles.schemas import WIRE_TYPES
from conftest import Server

PATH = "/v1/account/profiles"
ALL_TYPES = (None, "PROFILE_TYPE_UNSPECIFIED")


@dataclass(frozen=True)
class Row:
    id: str
    name: str
    email: str
    type: str
    labels: Mapping[str, str] = field(default_factory=dict)


def rows_of(server: Server, account_id: str) -> list[Row]:
    """Every profile of the account as stored: the model's input."""
    with server.runtime.db.transaction(write=False) as session:
        return [
            Row(p.id, p.name, p.email, str(WIRE_TYPES[p.type]), dict(p.labels))
            for p in session.scalars(select(Profile).where(Profile.account_id == account_id))
        ]


def expected(
    rows: list[Row],
    *,
    query: str = "",
    type: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> list[str]:
    """The ids a search must return, in the order it must return them."""
    needle = query.lower()
    hits = [
        r
        for r in rows
        if (needle in r.name.lower() or needle in r.email.lower())
        and (type in ALL_TYPES or r.type == type)
        and all(r.labels.get(k) == v for k, v in (labels or {}).items())
    ]
    return [r.id for r in sorted(hits, key=lambda r: (r.name.lower(), r.id))]


def label_filter(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in labels.items())


@dataclass
class Walk:
    items: list[dict[str, Any]]
    totals: list[int]
    pages: int

    @property
    def ids(self) -> list[str]:
        return [item["metadata"]["id"] for item in self.items]


def walk(http: httpx.Client, *, max_pages: int = 2000, **params: Any) -> Walk:
    """Every page of a search, following nextCursor until it is empty."""
    params = {k: v for k, v in params.items() if v is not None}
    result = Walk(items=[], totals=[], pages=0)
    cursor = ""
    while result.pages < max_pages:
        response = http.get(PATH, params={**params, "cursor": cursor} if cursor else params)
        assert response.status_code == 200, response.text
        body = response.json()
        result.pages += 1
        result.items += body["items"]
        result.totals.append(body["pagination"]["total"])
        cursor = body["pagination"]["nextCursor"]
        if not cursor:
            return result
    raise AssertionError(f"still a nextCursor after {max_pages} pages")
