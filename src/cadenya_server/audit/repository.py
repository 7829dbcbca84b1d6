"""Every query of the audit trail."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cadenya_server.models import AuditEvent


def page(session: Session, *, account_id: str, before: str | None, limit: int) -> list[AuditEvent]:
    """Up to `limit` events, newest first, starting before the id `before`."""
    statement = select(AuditEvent).where(AuditEvent.account_id == account_id)
    if before is not None:
        statement = statement.where(AuditEvent.id < before)
    return list(session.scalars(statement.order_by(AuditEvent.id.desc()).limit(limit)))


def count(session: Session, *, account_id: str) -> int:
    return session.scalar(
        select(func.count()).select_from(AuditEvent).where(AuditEvent.account_id == account_id)
    )
