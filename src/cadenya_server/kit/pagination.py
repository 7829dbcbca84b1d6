"""Page sizes and signed, opaque cursors bound to the query they came from."""

from __future__ import annotations

import binascii
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, TypeVar

from pydantic import BaseModel

from cadenya_server.kit.crypto import Keyring, b64url, b64url_decode
from cadenya_server.kit.errors import InvalidArgument

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


def page_size(limit: int | None) -> int:
    """0 or absent is the default, above the maximum is the maximum, negative is 400."""
    if limit is None or limit == 0:
        return DEFAULT_LIMIT
    if limit < 0:
        raise InvalidArgument.field("limit", "must not be negative")
    return min(limit, MAX_LIMIT)


def scope_of(*parts: object) -> str:
    """A fingerprint of what a cursor is valid for: the account, the call, the filters."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


class Cursors:
    """Encodes a position as `payload.mac`; the MAC covers the payload and its scope."""

    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring

    def encode(self, position: dict[str, Any], *, scope: str) -> str:
        payload = json.dumps(position, separators=(",", ":"), ensure_ascii=False).encode()
        mac = self._keyring.sign(scope.encode() + b"\x00" + payload)
        return f"{b64url(payload)}.{b64url(mac)}"

    def decode(self, cursor: str, *, scope: str) -> dict[str, Any]:
        """The position in `cursor`, or 400 if it was altered or belongs to another query."""
        payload_text, dot, mac_text = cursor.partition(".")
        try:
            payload = b64url_decode(payload_text)
            mac = b64url_decode(mac_text)
        except (binascii.Error, ValueError):
            payload, mac = b"", b""
        if (
            not dot
            or not payload
            or not self._keyring.verify(scope.encode() + b"\x00" + payload, mac)
        ):
            raise InvalidArgument.field(
                "cursor", "not a cursor of this query; start again without a cursor"
            )
        position = json.loads(payload)
        if not isinstance(position, dict):
            raise InvalidArgument.field("cursor", "malformed cursor")
        return position


def _start_after(cursors: Cursors, cursor: str, *, scope: str) -> str | None:
    """Where a page ordered by id starts: after the id in `cursor`, or at the beginning."""
    if not cursor:
        return None
    after = cursors.decode(cursor, scope=scope).get("i")
    if not isinstance(after, str):
        raise InvalidArgument.field("cursor", "malformed cursor")
    return after


def _cut(
    cursors: Cursors, rows: list[T], size: int, *, scope: str, id_of: Callable[[T], str]
) -> tuple[list[T], str]:
    """The page in `rows` (fetched with one extra) and the next page's cursor ("" at the end)."""
    if len(rows) <= size:
        return rows, ""
    rows = rows[:size]
    return rows, cursors.encode({"i": id_of(rows[-1])}, scope=scope)


@dataclass(frozen=True)
class PageRequest:
    """What a list call asks for: the cursor it goes on from ("": the start), its page
    size, and the codec of cursors."""

    cursors: Cursors
    cursor: str = ""
    limit: int | None = None


def id_page(
    page: PageRequest,
    *,
    scope: str,
    fetch: Callable[[str | None, int], list[T]],
    id_of: Callable[[T], str] = attrgetter("id"),
) -> tuple[list[T], str]:
    """One page of rows in id order, and the next page's cursor ("" at the end).

    `fetch(after, n)` returns up to `n` rows following the id `after` (None: from the start).
    """
    size = page_size(page.limit)
    rows = fetch(_start_after(page.cursors, page.cursor, scope=scope), size + 1)
    return _cut(page.cursors, rows, size, scope=scope, id_of=id_of)


def within_bytes(
    page: PageRequest,
    *,
    rows: list[T],
    rendered: Iterable[M],
    next_cursor: str,
    scope: str,
    max_bytes: int,
    id_of: Callable[[T], str] = attrgetter("id"),
) -> tuple[list[M], str]:
    """A page of `rendered` rows cut before the first item that would take its JSON past
    `max_bytes` (one item at least), with the cursor that resumes after the last one kept.

    `rendered` is consumed lazily, so the items past the cut are never built.
    """
    kept: list[M] = []
    size = 0
    for item in rendered:
        size += len(item.model_dump_json(by_alias=True))
        if kept and size > max_bytes:
            return kept, page.cursors.encode({"i": id_of(rows[len(kept) - 1])}, scope=scope)
        kept.append(item)
    return kept, next_cursor
