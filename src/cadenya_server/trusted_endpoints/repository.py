"""Every query of trusted endpoints."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cadenya_server.models import TrustedEndpoint


@dataclass(frozen=True)
class EndpointFilter:
    account_id: str
    labels: dict[str, str] = field(default_factory=dict)


def _conditions(where: EndpointFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [TrustedEndpoint.account_id == where.account_id]
    for key, value in where.labels.items():
        conditions.append(TrustedEndpoint.labels[key].as_string() == value)
    return conditions


def page(
    session: Session, where: EndpointFilter, *, after: str | None, limit: int
) -> list[TrustedEndpoint]:
    """Up to `limit` matches in id (creation) order, starting after the id `after`."""
    statement = select(TrustedEndpoint).where(*_conditions(where))
    if after is not None:
        statement = statement.where(TrustedEndpoint.id > after)
    return list(session.scalars(statement.order_by(TrustedEndpoint.id).limit(limit)))


def count(session: Session, where: EndpointFilter) -> int:
    return session.scalar(
        select(func.count()).select_from(TrustedEndpoint).where(*_conditions(where))
    )


def get(session: Session, *, account_id: str, endpoint_id: str) -> TrustedEndpoint | None:
    """An endpoint of this account, or None (also for another account's id)."""
    return session.scalars(
        select(TrustedEndpoint).where(
            TrustedEndpoint.id == endpoint_id, TrustedEndpoint.account_id == account_id
        )
    ).one_or_none()


def with_hosts(
    session: Session, *, account_id: str, hosts: list[str]
) -> dict[str, TrustedEndpoint]:
    """The account's endpoints whose stored host is one of `hosts`, by host."""
    rows = session.scalars(
        select(TrustedEndpoint).where(
            TrustedEndpoint.account_id == account_id, TrustedEndpoint.host.in_(hosts)
        )
    )
    return {row.host: row for row in rows}


def add(session: Session, endpoint: TrustedEndpoint) -> bool:
    """Insert the endpoint; False, and nothing written, if the account already has its host."""
    try:
        # A savepoint keeps the request's transaction usable after a duplicate,
        # which the unique index catches also when two creates race.
        with session.begin_nested():
            session.add(endpoint)
    except IntegrityError:
        return False
    return True


def remove(session: Session, endpoint: TrustedEndpoint) -> None:
    session.delete(endpoint)
