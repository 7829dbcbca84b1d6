"""Prefixed ULIDs: `profile_01HXK...`, sortable by creation time."""

from __future__ import annotations

import re

from ulid import ULID

_ULID = "[0-9A-HJKMNP-TV-Z]{26}"


def new_id(prefix: str) -> str:
    """A fresh id with the given prefix."""
    return f"{prefix}_{ULID()}"


def looks_like(prefix: str, value: str) -> bool:
    """Whether `value` has the shape of an id with this prefix."""
    return re.fullmatch(f"{prefix}_{_ULID}", value) is not None
