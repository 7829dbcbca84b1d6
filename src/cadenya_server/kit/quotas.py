"""Per-account quotas on what an account can grow: refused with 400 FAILED_PRECONDITION,
since only removing something makes room (waiting does not)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.orm import Session

from cadenya_server.kit.errors import FailedPrecondition


def require_room(
    session: Session,
    *,
    account_id: str,
    what: str,
    limit: int,
    setting: str,
    remedy: str,
    count: Callable[[], int],
    adding: int = 1,
) -> None:
    """400 unless the account's `count()` of `what` leaves room for `adding` more.

    Checked under a lock per account and quota, held until the transaction ends, so
    two requests cannot both take the last place. On SQLite a writing request already
    holds the database's one write lock (BEGIN IMMEDIATE).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"quota/{what}/{account_id}"},
        )
    refuse_beyond(
        used=count(), adding=adding, limit=limit, what=what, setting=setting, remedy=remedy
    )


def refuse_beyond(
    *, used: int, adding: int, limit: int, what: str, setting: str, remedy: str, holder: str = ""
) -> None:
    """400 if `used` + `adding` exceeds `limit`; the message names the limit and the way out."""
    if adding > 0 and used + adding > limit:
        raise FailedPrecondition(
            f"{holder or 'this account'} may hold at most {limit} {what} ({setting}), "
            f"and this would make {used + adding}; {remedy}"
        )
