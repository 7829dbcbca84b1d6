"""Prefixed ULIDs: `profile_01HXK...`, sortable by creation time."""

from __future__ import annotations

import base64
import os
import re

from ulid import ULID

_ULID = "[0-9A-HJKMNP-TV-Z]{26}"


def new_id(prefix: str) -> str:
    """A fresh id with the given prefix."""
    return f"{prefix}_{ULID()}"


# base 32 of random bytes is a ULID's randomness in RFC 4648's alphabet, which maps
# onto Crockford's.
_CROCKFORD = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
)


def new_ids(prefix: str, count: int) -> list[str]:
    """`count` fresh ids at once, sharing one time: the importer takes them by the million,
    where one new_id per row was a measurable share of its work (bench/README.md)."""
    stamp = f"{prefix}_{str(ULID())[:10]}"
    randomness = base64.b32encode(os.urandom(10 * count)).translate(_CROCKFORD).decode()
    return [stamp + randomness[i : i + 16] for i in range(0, 16 * count, 16)]


def pattern(prefix: str) -> str:
    """The shape of an id with this prefix, as a regular expression (and in the OpenAPI
    document)."""
    return f"^{prefix}_{_ULID}$"


def length(prefix: str) -> int:
    return len(prefix) + 1 + 26


def looks_like(prefix: str, value: str) -> bool:
    """Whether `value` has the shape of an id with this prefix."""
    return re.fullmatch(pattern(prefix), value) is not None
