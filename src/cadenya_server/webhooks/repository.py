"""Every query of webhook endpoints, messages, deliveries and attempts, the workers' included."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import takewhile
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

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


def endpoints_by_id(session: Session, ids: list[str]) -> list[WebhookEndpoint]:
    """The endpoints of these ids, in id order."""
    return list(
        session.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.id.in_(ids)).order_by(WebhookEndpoint.id)
        )
    )


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


# The workers' statements run for every claim and recording: built once, bound to
# parameters, read as plain rows (building them took more than running them).
_D = WebhookDelivery.__table__
_E = WebhookEndpoint.__table__
_M = WebhookMessage.__table__
_EARLIER = _D.alias("earlier")


def _heads(*, postgres: bool) -> Select[Any]:
    """Due, unleased deliveries that are unordered or their ordered endpoint's first
    unfinished one."""
    statement = (
        select(_D.c.id, _D.c.endpoint_id, _D.c.seq, _E.c.rate_limit_per_second)
        .join(_E, _E.c.id == _D.c.endpoint_id)
        .where(
            _D.c.status == PENDING,
            _D.c.next_attempt_at <= bindparam("now"),
            or_(_D.c.leased_until.is_(None), _D.c.leased_until < bindparam("now")),
            or_(
                _D.c.seq.is_(None),
                ~select(_EARLIER.c.id)
                .where(
                    _EARLIER.c.endpoint_id == _D.c.endpoint_id,
                    _EARLIER.c.status == PENDING,
                    _EARLIER.c.seq < _D.c.seq,
                )
                .exists(),
            ),
        )
        .order_by(_D.c.next_attempt_at, _D.c.id)
        .limit(bindparam("limit", type_=Integer))
    )
    return statement.with_for_update(skip_locked=True, of=_D) if postgres else statement


_HEADS = {"postgresql": _heads(postgres=True), "sqlite": _heads(postgres=False)}
_FOLLOWERS = (
    select(_D.c.id, _D.c.next_attempt_at, _D.c.leased_until)
    .where(
        _D.c.endpoint_id == bindparam("endpoint_id"),
        _D.c.status == PENDING,
        _D.c.seq > bindparam("after"),
    )
    .order_by(_D.c.seq)
    .limit(bindparam("limit", type_=Integer))
)
_LOCK_FREE = (
    select(_D.c.id)
    .where(_D.c.id.in_(bindparam("ids", expanding=True)))
    .with_for_update(skip_locked=True)
)
_LEASE = (
    update(_D)
    .where(_D.c.id.in_(bindparam("ids", expanding=True)))
    .values(leased_until=bindparam("lease_until"), lease_token=bindparam("token"))
)
_CLAIMED = (
    select(
        _D.c.id,
        _D.c.account_id,
        _D.c.message_id,
        _D.c.endpoint_id,
        _D.c.attempt_count,
        _D.c.seq,
        _M.c.type,
        _M.c.data,
        _M.c.created_at,
        _E.c.url,
        _E.c.rate_limit_per_second,
    )
    .join(_M, _M.c.id == _D.c.message_id)
    .join(_E, _E.c.id == _D.c.endpoint_id)
    .where(_D.c.id.in_(bindparam("ids", expanding=True)))
)
_NEXT_DUE = select(func.min(_D.c.next_attempt_at)).where(
    _D.c.status == PENDING, _D.c.next_attempt_at > bindparam("after")
)


@dataclass(frozen=True)
class Claimed:
    """A leased delivery with what sending it takes: its message and its endpoint."""

    id: str
    account_id: str
    message_id: str
    endpoint_id: str
    attempt_count: int
    seq: int | None
    type: str
    data: Any
    created_at: datetime
    url: str
    rate_limit_per_second: int


def claim(
    session: Session,
    *,
    now: datetime,
    limit: int,
    run_length: int,
    lease_until: datetime,
    token: str,
) -> list[list[Claimed]]:
    """Lease up to `limit` runs of due deliveries to this worker.

    An unordered delivery is a run of its own. An ordered endpoint's first unfinished
    delivery heads a run of up to `run_length` of its deliveries, consecutive in commit
    order (an endpoint with a rate limit: one), so a worker sends them one after another
    on one claim.

    On PostgreSQL the rows are locked with SKIP LOCKED, so workers claiming at once take
    different rows without waiting; the lease, committed with the claim, keeps the rows
    this worker's until it records the attempt or the lease passes (a killed worker).
    A run's later deliveries are not first in line while its head is pending, and once
    it is done they are leased: no other worker takes them meanwhile.
    """
    dialect = session.get_bind().dialect.name
    runs: list[list[str]] = []
    for delivery_id, endpoint_id, seq, rate in session.execute(
        _HEADS[dialect], {"now": now, "limit": limit}
    ).all():
        run = [delivery_id]
        if seq is not None and rate == 0 and run_length > 1:
            run += _followers(
                session, endpoint_id=endpoint_id, after=seq, now=now, limit=run_length - 1
            )
        runs.append(run)
    if not runs:
        return []
    ids = [delivery_id for run in runs for delivery_id in run]
    session.execute(_LEASE, {"ids": ids, "lease_until": lease_until, "token": token})
    rows = {row.id: Claimed(**row._mapping) for row in session.execute(_CLAIMED, {"ids": ids})}
    return [[rows[delivery_id] for delivery_id in run] for run in runs]


def _followers(
    session: Session, *, endpoint_id: str, after: int, now: datetime, limit: int
) -> list[str]:
    """The ordered endpoint's pending deliveries right after `after`, in commit order, as
    far as each is due and free: the run stops at the first that is not."""
    ids: list[str] = []
    for delivery_id, due, leased in session.execute(
        _FOLLOWERS, {"endpoint_id": endpoint_id, "after": after, "limit": limit}
    ):
        if due is None or as_utc(due) > now or (leased is not None and as_utc(leased) >= now):
            break
        ids.append(delivery_id)
    if ids and session.get_bind().dialect.name == "postgresql":
        # A row another transaction holds is skipped, not waited for: the run ends there.
        locked = set(session.scalars(_LOCK_FREE, {"ids": ids}))
        ids = list(takewhile(locked.__contains__, ids))
    return ids


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


def release_unsent(session: Session, leases: list[tuple[str, str]]) -> None:
    """Give back leased deliveries (id, lease token) that were not sent, as they were."""
    if leases:
        session.execute(
            update(_D)
            .where(
                _D.c.id == bindparam("b_id"),
                _D.c.lease_token == bindparam("b_token"),
            )
            .values(leased_until=None, lease_token=""),
            [{"b_id": delivery_id, "b_token": token} for delivery_id, token in leases],
        )


_LOCK_ENDPOINTS = (
    select(_E.c.id)
    .where(_E.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(_E.c.id)
    .with_for_update(key_share=True)
)


def lock_endpoints(session: Session, endpoint_ids: set[str]) -> None:
    """PostgreSQL: lock these endpoints' rows, in id order, before a recording locks their
    deliveries. A change of an endpoint locks its row, then its deliveries (disabling or
    deleting it); a recording that locked the deliveries first and then the endpoint (to
    note its success) could wait for it while it waits for them. FOR NO KEY UPDATE: the
    writers inserting deliveries (a key share) do not wait for it."""
    if endpoint_ids and session.get_bind().dialect.name == "postgresql":
        session.execute(_LOCK_ENDPOINTS, {"ids": sorted(endpoint_ids)})


def record_attempts(
    session: Session, outcomes: list[tuple[str, dict[str, Any]]], attempts: list[dict[str, Any]]
) -> set[str]:
    """Write the attempts' outcomes, `(lease token, delivery values)` with the delivery's
    `id` among the values, of those whose lease this worker still holds; their ids.

    Every values dict names the same columns. `attempts` are the attempt rows to log,
    written for the deliveries recorded only.
    """
    if not outcomes:
        return set()
    tokens = {values["id"]: token for token, values in outcomes}
    held = select(WebhookDelivery.id, WebhookDelivery.lease_token).where(
        WebhookDelivery.id.in_(tokens)
    )
    if session.get_bind().dialect.name == "postgresql":
        held = held.with_for_update()
    recorded = {
        delivery_id
        for delivery_id, token in session.execute(held)
        if token and token == tokens[delivery_id]
    }
    rows = [
        {"b_" + k if k == "id" else k: v for k, v in values.items()}
        | {"leased_until": None, "lease_token": ""}
        for _, values in outcomes
        if values["id"] in recorded
    ]
    if rows:
        session.execute(update(_D).where(_D.c.id == bindparam("b_id")), rows)
        session.execute(
            insert(WebhookAttempt), [a for a in attempts if a["delivery_id"] in recorded]
        )
    return recorded


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
    return _aware(session.scalar(_NEXT_DUE, {"after": after}))


def endpoint_results(
    session: Session,
    *,
    succeeded: list[str],
    failed: list[str],
    gone: dict[str, str],
    at: datetime,
    disable_after: timedelta,
) -> dict[str, str]:
    """Note the endpoints' successes and failures; disable those gone (410) and those
    failing without a success for `disable_after`, and return them, each with its reason.
    Ids come sorted, so workers writing the same endpoints lock their rows in one order."""
    disabled: dict[str, str] = {}
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
        reason = f"failing without a success for {disable_after.total_seconds():g} s"
        for endpoint_id in session.scalars(
            update(WebhookEndpoint)
            .where(
                WebhookEndpoint.id.in_(failed),
                WebhookEndpoint.enabled,
                WebhookEndpoint.failing_since <= at - disable_after,
            )
            .values(enabled=False, disabled_reason=reason)
            .returning(WebhookEndpoint.id)
        ).all():
            disabled[endpoint_id] = reason
    for endpoint_id, reason in sorted(gone.items()):
        if endpoint_id not in disabled and session.scalar(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.enabled)
            .values(enabled=False, disabled_reason=reason)
            .returning(WebhookEndpoint.id)
        ):
            disabled[endpoint_id] = reason
    for endpoint_id in disabled:
        disable_pending(session, endpoint_id=endpoint_id)
    return disabled
