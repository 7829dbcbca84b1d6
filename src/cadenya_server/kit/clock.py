"""Time in one place: aware UTC datetimes in, RFC 3339 with `Z` out."""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def rfc3339(value: datetime | None) -> str:
    """`2026-11-22T13:18:18.123Z`, or "" for an unset time."""
    if value is None:
        return ""
    # isoformat, not strftime: a page of profiles formats fifty of these.
    naive = value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)
    return naive.isoformat(timespec="milliseconds") + "Z"
