"""Every query of webhook endpoints, messages, deliveries and attempts, the workers' included."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from cadenya_server.kit.clock import as_utc
from cadenya_server.models import (
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookMessage,
)

PENDING, COMPLETED, FAILED, DISABLED = "pending", "completed", "failed", "disabled"

# --- Endpoints ----------------------------------------------------------------------------


def endpoint_page(
    session: Session, *, account_id: str, after: str | None, limit: int
) -> list[WebhookEndpoint]:
    """Up to `limit` endpoints in id (creation) order, starting after the id `after`."""
    statement = select(WebhookEndpoint).where(WebhookEndpoint.account_id == account_id)
    if after is not None:
        statement = statement.where(WebhookEndpoint.id > after)
    return list(session.scalars(statement.order_by(WebhookEndpoint.id).limit(limit)))


def endpoint_count(session: Session, *, account_id: str) -> int:
    return session.scalar(
        select(func.count())
        .select_from(WebhookEndpoint)
        .where(WebhookEndpoint.account_id == account_id)
    )


def get_endpoint(
    session: Session, *, account_id: str, endpoint_id: str, lock: bool = False
) -> WebhookEndpoint | None:
    """An endpoint of this account, or None (also for another account's id)."""
    statement = select(WebhookEndpoint).where(
        WebhookEndpoint.id == endpoint_id, WebhookEndpoint.account_id == account_id
    )
    if lock:
        statement = statement.with_for_update()
    return session.scalars(statement).one_or_none()


def disable_pending(session: Session, *, endpoint_id: str) -> None:
    """Deliveries waiting for a disabled endpoint will not be sent (:recover sends them)."""
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.status == PENDING)
        .values(status=DISABLED, next_attempt_at=None, leased_until=None, lease_token="")
    )


# --- Messages -----------------------------------------------------------------------------


def message_page(
    session: Session, *, account_id: str, type: str, before: str | None, limit: int
) -> list[WebhookMessage]:
    """Up to `limit` messages, newest first, starting before the id `before`."""
    statement = select(WebhookMessage).where(*_message_conditions(account_id, type))
    if before is not None:
        statement = statement.where(WebhookMessage.id < before)
    return list(session.scalars(statement.order_by(WebhookMessage.id.desc()).limit(limit)))


def _message_conditions(account_id: str, type: str) -> list[ColumnElement[bool]]:
    conditions = [WebhookMessage.account_id == account_id]
    if type:
        conditions.append(WebhookMessage.type == type)
    return conditions


def message_count(session: Session, *, account_id: str, type: str) -> int:
    return session.scalar(
        select(func.count())
        .select_from(WebhookMessage)
        .where(*_message_conditions(account_id, type))
    )


def get_message(session: Session, *, account_id: str, message_id: str) -> WebhookMessage | None:
    return session.scalars(
        select(WebhookMessage).where(
            WebhookMessage.id == message_id, WebhookMessage.account_id == account_id
        )
    ).one_or_none()


def by_idempotency_key(session: Session, *, account_id: str, key: str) -> WebhookMessage | None:
    return session.scalars(
        select(WebhookMessage).where(
            WebhookMessage.account_id == account_id, WebhookMessage.idempotency_key == key
        )
    ).one_or_none()


def forget_idempotency_key(session: Session, message: WebhookMessage) -> None:
    """Free a key whose 24 hours are over for a new message."""
    message.idempotency_key = None
    session.flush()


def claim_key(session: Session, publish: Callable[[], None]) -> bool:
    """Run `publish()` in a savepoint; False, and nothing written, if the idempotency key
    was taken meanwhile (the unique index catches two publishes that race)."""
    try:
        with session.begin_nested():
            publish()
    except IntegrityError:
        return False
    return True


# --- Deliveries ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryFilter:
    endpoint_id: str
    status: str = ""
    event_type: str = ""


def _delivery_conditions(where: DeliveryFilter) -> list[ColumnElement[bool]]:
    conditions = [WebhookDelivery.endpoint_id == where.endpoint_id]
    if where.status:
        conditions.append(WebhookDelivery.status == where.status)
    if where.event_type:
        conditions.append(WebhookDelivery.event_type == where.event_type)
    return conditions


def delivery_page(
    session: Session, where: DeliveryFilter, *, before: str | None, limit: int
) -> list[WebhookDelivery]:
    """Up to `limit` deliveries of an endpoint, newest first, before the id `before`."""
    statement = select(WebhookDelivery).where(*_delivery_conditions(where))
    if before is not None:
        statement = statement.where(WebhookDelivery.id < before)
    return list(session.scalars(statement.order_by(WebhookDelivery.id.desc()).limit(limit)))


def delivery_count(session: Session, where: DeliveryFilter) -> int:
    return session.scalar(
        select(func.count()).select_from(WebhookDelivery).where(*_delivery_conditions(where))
    )


def get_delivery(session: Session, *, endpoint_id: str, delivery_id: str) -> WebhookDelivery | None:
    return session.scalars(
        select(WebhookDelivery).where(
            WebhookDelivery.id == delivery_id, WebhookDelivery.endpoint_id == endpoint_id
        )
    ).one_or_none()


def attempts_of(session: Session, delivery_ids: list[str]) -> dict[str, list[WebhookAttempt]]:
    found: dict[str, list[WebhookAttempt]] = defaultdict(list)
    if delivery_ids:
        for row in session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(delivery_ids))
            .order_by(WebhookAttempt.id)
        ):
            found[row.delivery_id].append(row)
    return found


def failed_since(session: Session, *, endpoint_id: str, since: datetime) -> list[str]:
    """The ids of the endpoint's failed or disabled deliveries created since `since`."""
    return list(
        session.scalars(
            select(WebhookDelivery.id).where(
                WebhookDelivery.endpoint_id == endpoint_id,
                WebhookDelivery.status.in_([FAILED, DISABLED]),
                WebhookDelivery.created_at >= since,
            )
        )
    )


# --- The workers --------------------------------------------------------------------------


def _due(now: datetime) -> ColumnElement[bool]:
    return and_(
        WebhookDelivery.status == PENDING,
        WebhookDelivery.next_attempt_at <= now,
        or_(WebhookDelivery.leased_until.is_(None), WebhookDelivery.leased_until < now),
    )


def _first_in_line() -> ColumnElement[bool]:
    """Unordered deliveries, or an ordered endpoint's first unfinished one."""
    earlier = aliased(WebhookDelivery)
    return or_(
        WebhookDelivery.seq.is_(None),
        ~select(earlier.id)
        .where(
            earlier.endpoint_id == WebhookDelivery.endpoint_id,
            earlier.status == PENDING,
            earlier.seq < WebhookDelivery.seq,
        )
        .exists(),
    )


def claim(
    session: Session, *, now: datetime, limit: int, lease_until: datetime, token: str
) -> list[WebhookDelivery]:
    """Lease up to `limit` due deliveries to this worker.

    On PostgreSQL the rows are locked with SKIP LOCKED, so workers claiming at once take
    different rows without waiting; the lease, committed with the claim, keeps the rows
    this worker's until it records the attempt or the lease passes (a killed worker).
    """
    candidates = (
        select(WebhookDelivery.id)
        .where(_due(now), _first_in_line())
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    ids = list(session.scalars(candidates))
    if not ids:
        return []
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(ids))
        .values(leased_until=lease_until, lease_token=token)
    )
    return list(
        session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.id.in_(ids))
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        )
    )


def messages_by_id(session: Session, ids: set[str]) -> dict[str, WebhookMessage]:
    return {
        row.id: row
        for row in session.scalars(select(WebhookMessage).where(WebhookMessage.id.in_(ids)))
    }


def endpoints_by_id(session: Session, ids: set[str]) -> dict[str, WebhookEndpoint]:
    return {
        row.id: row
        for row in session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.id.in_(ids)))
    }


def take_send_slot(
    session: Session, *, endpoint_id: str, now: datetime, interval_seconds: float
) -> datetime | None:
    """Book the endpoint's next send under its rate: None if this attempt may start now
    (the slot is booked), else when the next free slot opens (nothing is booked).

    The endpoint's row is locked while it is read and booked, so every worker books from
    the same schedule, and only sends move it on.
    """
    row = session.scalars(
        select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id).with_for_update()
    ).one()
    free_at = _aware(row.next_send_at)
    if free_at is not None and free_at > now:
        return free_at
    row.next_send_at = now + timedelta(seconds=interval_seconds)
    return None


def _aware(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


def release(session: Session, *, delivery_id: str, token: str, at: datetime) -> None:
    """Give a leased delivery back, due at `at`, without counting an attempt."""
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.lease_token == token)
        .values(next_attempt_at=at, leased_until=None, lease_token="")
    )


def record_attempt(
    session: Session,
    *,
    delivery_id: str,
    token: str,
    values: dict[str, Any],
    attempt: WebhookAttempt,
) -> bool:
    """Write an attempt's outcome if this worker still holds the lease; whether it did."""
    done = session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.lease_token == token)
        .values(**values, leased_until=None, lease_token="")
    )
    if done.rowcount != 1:
        return False
    session.add(attempt)
    return True


def pending_stats(session: Session) -> tuple[int, datetime | None]:
    """How many deliveries are pending, and the creation time of the oldest."""
    count, oldest = session.execute(
        select(func.count(), func.min(WebhookDelivery.created_at)).where(
            WebhookDelivery.status == PENDING
        )
    ).one()
    return count, _aware(oldest)


def next_due(session: Session, *, after: datetime) -> datetime | None:
    """When the next pending delivery falls due after `after` (a retry's time).

    Those due already are claimed, leased, or waiting their turn on an ordered endpoint:
    a worker hears of them from a commit, its own recorder, or its poll.
    """
    return _aware(
        session.scalar(
            select(func.min(WebhookDelivery.next_attempt_at)).where(
                WebhookDelivery.status == PENDING, WebhookDelivery.next_attempt_at > after
            )
        )
    )


def endpoint_results(
    session: Session,
    *,
    succeeded: list[str],
    failed: list[str],
    gone: dict[str, str],
    at: datetime,
    disable_after: timedelta,
) -> None:
    """Note the endpoints' successes and failures; disable those gone (410) and those
    failing without a success for `disable_after`. Ids come sorted, so workers writing
    the same endpoints lock their rows in one order."""
    if succeeded:
        session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id.in_(succeeded))
            .values(last_success_at=at, failing_since=None)
        )
    if failed:
        session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id.in_(failed), WebhookEndpoint.failing_since.is_(None))
            .values(failing_since=at)
        )
        stale = session.scalars(
            update(WebhookEndpoint)
            .where(
                WebhookEndpoint.id.in_(failed),
                WebhookEndpoint.enabled,
                WebhookEndpoint.failing_since <= at - disable_after,
            )
            .values(
                enabled=False,
                disabled_reason="failing without a success for "
                f"{disable_after.total_seconds():g} s",
            )
            .returning(WebhookEndpoint.id)
        ).all()
        for endpoint_id in stale:
            disable_pending(session, endpoint_id=endpoint_id)
    for endpoint_id, reason in sorted(gone.items()):
        session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint_id)
            .values(enabled=False, disabled_reason=reason)
        )
        disable_pending(session, endpoint_id=endpoint_id)
