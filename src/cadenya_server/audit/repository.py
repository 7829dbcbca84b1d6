"""Every query of the audit trail."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from cadenya_server.models import AuditEvent


@dataclass(frozen=True)
class AuditFilter:
    account_id: str
    # "" matches every action, every actor.
    action: str = ""
    actor_profile_id: str = ""


def _conditions(where: AuditFilter) -> list[ColumnElement[bool]]:
    conditions = [AuditEvent.account_id == where.account_id]
    if where.action:
        conditions.append(AuditEvent.action == where.action)
    if where.actor_profile_id:
        conditions.append(AuditEvent.actor_profile_id == where.actor_profile_id)
    return conditions


def page(
    session: Session, where: AuditFilter, *, before: str | None, limit: int
) -> list[AuditEvent]:
    """Up to `limit` events, newest first, starting before the id `before`."""
    statement = select(AuditEvent).where(*_conditions(where))
    if before is not None:
        statement = statement.where(AuditEvent.id < before)
    return list(session.scalars(statement.order_by(AuditEvent.id.desc()).limit(limit)))


def count(session: Session, where: AuditFilter) -> int:
    return session.scalar(select(func.count()).select_from(AuditEvent).where(*_conditions(where)))
