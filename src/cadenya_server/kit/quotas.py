"""Per-account quotas on what an account can grow: refused with 400 FAILED_PRECONDITION,
since only removing something makes room (waiting does not)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from cadenya_server.kit.errors import FailedPrecondition


@dataclass(frozen=True)
class Quota:
    """A limit on how many of `what` one holder may hold, set by the operator's `setting`."""

    what: str
    setting: str
    # What makes room, for the message.
    remedy: str
    holder: str = "this account"

    def refuse_beyond(self, *, limit: int, used: int, adding: int = 1) -> None:
        """400 if `used` + `adding` exceeds `limit`; the message names the limit and the way out."""
        if adding > 0 and used + adding > limit:
            raise FailedPrecondition(
                f"{self.holder} may hold at most {limit} {self.what} ({self.setting}), "
                f"and this would make {used + adding}; {self.remedy}"
            )

    def require_room(
        self, session: Session, *, account_id: str, limit: int, count: Callable[[], int]
    ) -> None:
        """400 unless the account's `count()` leaves room for one more.

        Counted under a lock per account and quota, held until the transaction ends, so
        two requests cannot both take the last place. On SQLite a writing request already
        holds the database's one write lock (BEGIN IMMEDIATE).
        """
        if session.get_bind().dialect.name == "postgresql":
            session.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                {"key": f"quota/{self.setting}/{account_id}"},
            )
        self.refuse_beyond(limit=limit, used=count())
