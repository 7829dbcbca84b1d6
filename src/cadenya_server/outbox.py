"""The webhook outbox: a message and its deliveries, written in the transaction of the change.

A change on the account plane and the event that tells of it commit together or
not at all: nothing is sent for a change that rolled back, nothing is lost for one
that committed. Workers (`webhooks.worker`) send what is written here.

The worker of the process that writes (the one `serve` runs) is handed the new
deliveries it has room for: they are written already leased to it, and given to it
when the transaction commits (`kit.db.on_commit`; a rollback gives it nothing; in a
request, once its response is sent), so it sends them without a claim. What it is not
handed (ordered or rate-limited endpoints, more than it has room for, no worker in this
process) waits for a claim: a commit wakes the workers at once, through PostgreSQL's
NOTIFY (delivered only on commit, to every process) and the in-process signal.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Engine, insert, or_, select, text, update
from sqlalchemy.orm import Session

from cadenya_server.kit.clock import now
from cadenya_server.kit.db import after_response
from cadenya_server.kit.db import on_commit as after_commit
from cadenya_server.kit.ids import new_id, new_ids
from cadenya_server.models import WebhookDelivery, WebhookEndpoint, WebhookMessage

# The audit trail's actions that change something, and the event each one emits.
EVENT_TYPES = {
    "profile.create": "profile.created",
    "profile.update": "profile.updated",
    "profile.delete": "profile.deleted",
    "profile.deactivate": "profile.deactivated",
    "profile.reactivate": "profile.reactivated",
    "workspace.create": "workspace.created",
    "workspace.update": "workspace.updated",
    "workspace.archive": "workspace.archived",
    "workspace.member.add": "member.added",
    "workspace.member.remove": "member.removed",
    "api_key.create": "api_key.created",
    "api_key.update": "api_key.updated",
    "api_key.rotate": "api_key.rotated",
    "api_key.enable": "api_key.enabled",
    "api_key.disable": "api_key.disabled",
    "api_key.delete": "api_key.deleted",
    "api_key.add_workspace": "api_key.workspace_added",
    "api_key.remove_workspace": "api_key.workspace_removed",
    "trusted_endpoint.create": "trusted_endpoint.created",
    "trusted_endpoint.delete": "trusted_endpoint.deleted",
    "webhook_endpoint.create": "webhook_endpoint.created",
    "webhook_endpoint.update": "webhook_endpoint.updated",
    "webhook_endpoint.delete": "webhook_endpoint.deleted",
    "webhook_endpoint.enable": "webhook_endpoint.enabled",
    "webhook_endpoint.disable": "webhook_endpoint.disabled",
    "sso_connection.create": "sso_connection.created",
    "sso_connection.update": "sso_connection.updated",
    "sso_connection.delete": "sso_connection.deleted",
    "account.rotate_webhook_signing_key": "account.webhook_signing_key_rotated",
    "account.expire_previous_webhook_signing_key": "account.previous_webhook_signing_key_expired",
    "account.rotate_challenge_token": "account.challenge_token_rotated",
}
TEST_EVENT = "webhook.test"
NOTIFY_CHANNEL = "cadenya_webhooks"

_listeners: list[Callable[[], None]] = []
_listeners_lock = threading.Lock()
_NOTIFIED = "cadenya.outbox_notified"


def on_commit(listener: Callable[[], None]) -> Callable[[], None]:
    """Call `listener` after every transaction of this process that wrote deliveries it did
    not hand to a worker; returns the function that stops it."""
    with _listeners_lock:
        _listeners.append(listener)

    def stop() -> None:
        with _listeners_lock:
            if listener in _listeners:
                _listeners.remove(listener)

    return stop


def _wake() -> None:
    with _listeners_lock:
        listeners = list(_listeners)
    for listener in listeners:
        listener()


def _wake_after(session: Session) -> None:
    """Wake the workers when this transaction commits (nothing for a rollback)."""
    if session.get_bind().dialect.name == "postgresql" and not session.info.get(_NOTIFIED):
        # Queued by the transaction; PostgreSQL delivers it only if it commits, to the
        # workers of every process.
        session.info[_NOTIFIED] = True
        session.execute(text(f"NOTIFY {NOTIFY_CHANNEL}"))
    after_commit(session, lambda: after_response(_wake))


@dataclass(frozen=True)
class Handed:
    """A delivery handed to a worker at commit: what sending it takes."""

    delivery_id: str
    account_id: str
    message_id: str
    endpoint_id: str
    url: str
    type: str
    data: Any
    created_at: datetime


@dataclass(frozen=True)
class Reservation:
    """Room a worker keeps for deliveries written leased to it: up to `count`."""

    token: str
    lease_until: datetime
    count: int


class Taker(Protocol):
    """A worker that takes deliveries at commit (`webhooks.worker.Worker`)."""

    def reserve(self, count: int) -> Reservation | None: ...

    def take(self, reservation: Reservation, handed: list[Handed]) -> None: ...

    def unreserve(self, reservation: Reservation) -> None: ...


_takers: dict[Engine, Taker] = {}


def hand_to(engine: Engine, taker: Taker) -> Callable[[], None]:
    """Hand `taker` the deliveries this process writes to `engine`'s database, as far as it
    has room; returns the function that stops it."""
    with _listeners_lock:
        _takers[engine] = taker

    def stop() -> None:
        with _listeners_lock:
            if _takers.get(engine) is taker:
                del _takers[engine]

    return stop


def _handable(endpoint: WebhookEndpoint) -> bool:
    """Sent as soon as written: not an ordered endpoint's (first in line is decided by a
    claim), nor a rate-limited one's (its send slot is booked by a claim)."""
    return not endpoint.ordered and not endpoint.rate_limit_per_second


def _hand(session: Session, deliveries: list[dict[str, Any]], handable: list[bool]) -> bool:
    """Lease to this process's worker those of `deliveries` it has room for and that may be
    handed, to be given to it at commit; whether all of them were."""
    wanted = sum(handable)
    if not wanted:
        return False
    with _listeners_lock:
        taker = _takers.get(session.get_bind())
    reservation = taker.reserve(wanted) if taker is not None else None
    if taker is None or reservation is None:
        return False
    handed: list[Handed] = []
    for row, may in zip(deliveries, handable, strict=True):
        if not may or len(handed) == reservation.count:
            continue
        row["leased_until"] = reservation.lease_until
        row["lease_token"] = reservation.token
        handed.append(
            Handed(
                delivery_id=row["id"],
                account_id=row["account_id"],
                message_id=row["message_id"],
                endpoint_id=row["endpoint_id"],
                url=row.pop("_url"),
                type=row["event_type"],
                data=row.pop("_data"),
                created_at=row["created_at"],
            )
        )
    # Once the response is sent, when in a request: the caller does not wait for it, and
    # response → receipt stays a matter of milliseconds (bench/README.md).
    after_commit(
        session,
        lambda: after_response(lambda: taker.take(reservation, handed)),
        otherwise=lambda: taker.unreserve(reservation),
    )
    return len(handed) == len(deliveries)


@dataclass(frozen=True)
class Event:
    type: str
    data: dict[str, Any]


def _takes(endpoint: WebhookEndpoint, event_type: str) -> bool:
    return not endpoint.event_types or event_type in endpoint.event_types


def _subscribers(session: Session, account_id: str) -> list[WebhookEndpoint]:
    return list(
        session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.account_id == account_id, WebhookEndpoint.enabled)
            .order_by(WebhookEndpoint.id)
        )
    )


def _take_seqs(session: Session, endpoint_id: str, count: int) -> int:
    """Reserve `count` sequence numbers of an ordered endpoint; the first of them.

    The UPDATE locks the endpoint's row until this transaction ends, so writers to one
    ordered endpoint take their numbers one after another, in the order they commit.
    """
    last = session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id)
        .values(last_seq=WebhookEndpoint.last_seq + count)
        .returning(WebhookEndpoint.last_seq)
    ).scalar_one()
    return last - count + 1


def _write(
    session: Session,
    *,
    account_id: str,
    events: Sequence[Event],
    endpoints: Sequence[WebhookEndpoint],
    idempotency_key: str | None = None,
    every_type: bool = False,
) -> list[str]:
    """Insert the messages and a delivery per (message, endpoint that takes it; with
    `every_type`, per endpoint given); their ids."""
    stamp = now()
    message_ids = new_ids("msg", len(events)) if len(events) > 1 else [new_id("msg")]
    session.execute(
        insert(WebhookMessage),
        [
            {
                "id": message_id,
                "account_id": account_id,
                "type": event.type,
                "data": event.data,
                "idempotency_key": idempotency_key,
                "created_at": stamp,
            }
            for message_id, event in zip(message_ids, events, strict=True)
        ],
    )
    deliveries: list[dict[str, Any]] = []
    handable: list[bool] = []
    for endpoint in endpoints:
        taken = [
            (message_id, event)
            for message_id, event in zip(message_ids, events, strict=True)
            if every_type or _takes(endpoint, event.type)
        ]
        if not taken:
            continue
        first = _take_seqs(session, endpoint.id, len(taken)) if endpoint.ordered else None
        ids = new_ids("whdel", len(taken))
        for i, ((message_id, event), delivery_id) in enumerate(zip(taken, ids, strict=True)):
            deliveries.append(
                {
                    "id": delivery_id,
                    "account_id": account_id,
                    "message_id": message_id,
                    "endpoint_id": endpoint.id,
                    "event_type": event.type,
                    "seq": None if first is None else first + i,
                    "status": "pending",
                    "attempt_count": 0,
                    "next_attempt_at": stamp,
                    "leased_until": None,
                    "lease_token": "",
                    "http_status_code": 0,
                    "error_message": "",
                    "latency_ms": 0,
                    "response_headers": {},
                    "response_content_length": 0,
                    "created_at": stamp,
                    # For a hand-off (_hand), not columns.
                    "_url": endpoint.url,
                    "_data": event.data,
                }
            )
            handable.append(_handable(endpoint))
    if deliveries:
        all_handed = _hand(session, deliveries, handable)
        for row in deliveries:
            row.pop("_url", None)
            row.pop("_data", None)
        session.execute(insert(WebhookDelivery), deliveries)
        if not all_handed:
            _wake_after(session)
    return message_ids


def emit(session: Session, *, account_id: str, events: Sequence[Event]) -> int:
    """The server's own events, if any enabled endpoint takes them; how many were written."""
    endpoints = _subscribers(session, account_id)
    wanted = [e for e in events if any(_takes(endpoint, e.type) for endpoint in endpoints)]
    if not wanted:
        return 0
    _write(session, account_id=account_id, events=wanted, endpoints=endpoints)
    return len(wanted)


def wants(session: Session, *, account_id: str, event_types: Sequence[str]) -> bool:
    """Whether any enabled endpoint of the account takes one of these types."""
    return any(
        _takes(endpoint, t) for endpoint in _subscribers(session, account_id) for t in event_types
    )


def publish(
    session: Session,
    *,
    account_id: str,
    event: Event,
    idempotency_key: str | None = None,
    endpoint: WebhookEndpoint | None = None,
) -> str:
    """A message kept whether or not an endpoint takes it (to `endpoint` alone if given,
    whatever types it takes); its id."""
    endpoints = [endpoint] if endpoint is not None else _subscribers(session, account_id)
    (message_id,) = _write(
        session,
        account_id=account_id,
        events=[event],
        endpoints=endpoints,
        idempotency_key=idempotency_key,
        every_type=endpoint is not None,
    )
    return message_id


def requeue(session: Session, delivery_ids: Sequence[str]) -> None:
    """Make deliveries due now again (a retry or a recovery); the workers are woken."""
    if not delivery_ids:
        return
    at = now()
    session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id.in_(delivery_ids),
            # An attempt in flight keeps its lease: it is not sent twice at once.
            or_(
                WebhookDelivery.status != "pending",
                WebhookDelivery.leased_until.is_(None),
                WebhookDelivery.leased_until < at,
            ),
        )
        .values(status="pending", next_attempt_at=at, leased_until=None, lease_token="")
    )
    _wake_after(session)
