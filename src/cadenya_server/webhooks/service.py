"""Webhooks: the account's endpoints, the messages it sends, and the delivery log."""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta

import httpx
from sqlalchemy.orm import Session

from cadenya_server import outbox
from cadenya_server.audit import service as audit
from cadenya_server.auth.caller import Caller
from cadenya_server.kit import labels as label_rules
from cadenya_server.kit import quotas, update_mask
from cadenya_server.kit.clock import as_utc, now
from cadenya_server.kit.errors import FailedPrecondition, InvalidArgument, NotFound
from cadenya_server.kit.ids import new_id
from cadenya_server.kit.pagination import PageRequest, id_page, scope_of, within_bytes
from cadenya_server.kit.schemas import Pagination, UpdateAccountResourceMetadata
from cadenya_server.models import WebhookEndpoint as EndpointRow
from cadenya_server.trusted_endpoints import service as trusted_endpoints
from cadenya_server.trusted_endpoints.schemas import VerifyResult
from cadenya_server.webhooks import repository
from cadenya_server.webhooks.schemas import (
    ROW_OF_STATUS,
    CreateWebhookEndpointRequest,
    DeliveryStatus,
    PublishMessageRequest,
    RecoverResponse,
    UpdateWebhookEndpointRequest,
    WebhookDelivery,
    WebhookDeliveryList,
    WebhookEndpoint,
    WebhookEndpointList,
    WebhookEndpointSpecInput,
    WebhookMessage,
    WebhookMessageList,
)

IDEMPOTENCY_WINDOW = timedelta(hours=24)
ENDPOINTS = quotas.Quota(
    "webhook endpoints",
    "CADENYA_SERVER_MAX_WEBHOOK_ENDPOINTS_PER_ACCOUNT",
    "delete one to make room",
)
UPDATABLE = frozenset(
    {
        "metadata.name",
        "metadata.externalId",
        "metadata.labels",
        "spec.url",
        "spec.description",
        "spec.eventTypes",
        "spec.ordered",
        "spec.rateLimitPerSecond",
    }
)


def _host_of(url: httpx.URL) -> str:
    """The URL's host as httpx reads it, written as trusted endpoints write hosts."""
    host = url.host
    if ":" in host:
        host = f"[{ipaddress.IPv6Address(host).compressed}]"
    return host if url.port is None else f"{host}:{url.port}"


def _checked_url(session: Session, caller: Caller, url: str) -> str:
    """`url` if it is an absolute http(s) URL whose host the account trusts."""
    field = "spec.url"
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise InvalidArgument.field(field, f"not a URL: {exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidArgument.field(field, "must be an absolute http or https URL")
    if parsed.userinfo:
        raise InvalidArgument.field(field, "must not carry a user name or password")
    try:
        verified = trusted_endpoints.verify(session=session, caller=caller, url=url)
    except InvalidArgument as exc:
        raise InvalidArgument.field(field, exc.violations[0].description) from exc
    if verified.result == VerifyResult.TEMPLATED:
        raise InvalidArgument.field(field, "must not contain {{templates}}")
    # The host the trusted endpoints checked must be the one the worker's HTTP client
    # connects to: two URL parsers that disagree are a way around the check.
    if verified.host != _host_of(parsed):
        raise InvalidArgument.field(field, "its host is written in a way that reads two ways")
    if verified.result != VerifyResult.TRUSTED:
        raise FailedPrecondition(
            f"the account does not trust {verified.host!r}: add a trusted endpoint with host "
            f"{verified.host!r} first (POST /v1/account/trusted_endpoints)"
        )
    return url


def _find(session: Session, caller: Caller, endpoint_id: str) -> EndpointRow:
    row = repository.get_endpoint(session, account_id=caller.account_id, endpoint_id=endpoint_id)
    if row is None:
        raise NotFound(f"webhook endpoint {endpoint_id!r} not found")
    return row


def _audit(
    session: Session,
    caller: Caller,
    action: str,
    row: EndpointRow,
    details: dict[str, str] | None = None,
) -> WebhookEndpoint:
    session.flush()
    rendered = WebhookEndpoint.of(row)
    audit.record(
        session,
        caller=caller,
        action=action,
        resource_id=row.id,
        details=details,
        resource=rendered,
    )
    return rendered


# --- Endpoints ----------------------------------------------------------------------------


def list_endpoints(*, session: Session, caller: Caller, page: PageRequest) -> WebhookEndpointList:
    """One page of the account's webhook endpoints, oldest first."""
    rows, next_cursor = id_page(
        page,
        scope=scope_of("webhook_endpoints.list", caller.account_id),
        fetch=lambda after, n: repository.endpoint_page(
            session, account_id=caller.account_id, after=after, limit=n
        ),
    )
    return WebhookEndpointList(
        items=[WebhookEndpoint.of(row) for row in rows],
        pagination=Pagination(
            next_cursor=next_cursor,
            total=repository.endpoint_count(session, account_id=caller.account_id),
        ),
    )


def get_endpoint(*, session: Session, caller: Caller, endpoint_id: str) -> WebhookEndpoint:
    return WebhookEndpoint.of(_find(session, caller, endpoint_id))


def create_endpoint(
    *, session: Session, caller: Caller, body: CreateWebhookEndpointRequest, max_endpoints: int
) -> WebhookEndpoint:
    """A new, active endpoint; its URL's host must be trusted. 400 when the account holds
    `max_endpoints` already."""
    spec = body.spec
    ENDPOINTS.require_room(
        session,
        account_id=caller.account_id,
        limit=max_endpoints,
        count=lambda: repository.endpoint_count(session, account_id=caller.account_id),
    )
    row = EndpointRow(
        id=new_id("whep"),
        account_id=caller.account_id,
        name=body.metadata.name,
        external_id=body.metadata.external_id,
        labels=label_rules.validate(body.metadata.labels),
        creator_profile_id=caller.profile_id,
        url=_checked_url(session, caller, spec.url),
        description=spec.description,
        event_types=sorted(set(spec.event_types)),
        ordered=spec.ordered,
        rate_limit_per_second=spec.rate_limit_per_second,
        enabled=True,
        disabled_reason="",
        last_seq=0,
    )
    session.add(row)
    return _audit(session, caller, "webhook_endpoint.create", row)


def update_endpoint(
    *, session: Session, caller: Caller, endpoint_id: str, body: UpdateWebhookEndpointRequest
) -> WebhookEndpoint:
    """Change the fields the update mask names (or, without one, those in the body)."""
    paths = update_mask.paths(body.update_mask, body, allowed=UPDATABLE)
    row = _find(session, caller, endpoint_id)
    metadata = body.metadata or UpdateAccountResourceMetadata()
    spec = body.spec or WebhookEndpointSpecInput()
    if "metadata.name" in paths:
        if not metadata.name:
            raise InvalidArgument.field("metadata.name", "must not be empty")
        row.name = metadata.name
    if "metadata.externalId" in paths:
        row.external_id = metadata.external_id
    if "metadata.labels" in paths:
        row.labels = label_rules.validate(metadata.labels)
    if "spec.url" in paths:
        row.url = _checked_url(session, caller, spec.url)
    if "spec.description" in paths:
        row.description = spec.description
    if "spec.eventTypes" in paths:
        row.event_types = sorted(set(spec.event_types))
    if "spec.ordered" in paths:
        row.ordered = spec.ordered
    if "spec.rateLimitPerSecond" in paths:
        row.rate_limit_per_second = spec.rate_limit_per_second
    if not paths:
        return WebhookEndpoint.of(row)
    return _audit(session, caller, "webhook_endpoint.update", row)


def delete_endpoint(*, session: Session, caller: Caller, endpoint_id: str) -> None:
    """Remove an endpoint with its delivery log; nothing more is sent to it."""
    row = _find(session, caller, endpoint_id)
    _audit(session, caller, "webhook_endpoint.delete", row)
    session.delete(row)


def set_enabled(
    *, session: Session, caller: Caller, endpoint_id: str, enabled: bool
) -> WebhookEndpoint:
    """Enable or disable an endpoint. Disabling stops its pending deliveries (:recover sends
    them again); enabling starts afresh, its failures forgotten."""
    row = repository.get_endpoint(
        session, account_id=caller.account_id, endpoint_id=endpoint_id, lock=True
    )
    if row is None:
        raise NotFound(f"webhook endpoint {endpoint_id!r} not found")
    if row.enabled == enabled:
        return WebhookEndpoint.of(row)
    row.enabled = enabled
    row.disabled_reason = "" if enabled else "disabled by an administrator"
    row.failing_since = None
    if not enabled:
        repository.disable_pending(session, endpoint_id=row.id)
    action = "webhook_endpoint.enable" if enabled else "webhook_endpoint.disable"
    return _audit(session, caller, action, row)


def disabled_by_worker(*, session: Session, reasons: dict[str, str]) -> None:
    """The delivery worker disabled these endpoints (410 Gone, or failing too long): each
    is audited, with no one as the actor and the reason in the details, and emits
    `webhook_endpoint.disabled` as an administrator's :disable does, in the worker's
    transaction."""
    for row in repository.endpoints_by_id(session, sorted(reasons)):
        caller = Caller(account_id=row.account_id, profile_id="", scopes=frozenset())
        _audit(
            session, caller, "webhook_endpoint.disable", row, details={"reason": reasons[row.id]}
        )


# --- Messages -----------------------------------------------------------------------------


def publish(*, session: Session, caller: Caller, body: PublishMessageRequest) -> WebhookMessage:
    """Sign and send an event another service made; an idempotency key seen in the last
    24 hours returns the first message and sends nothing new."""
    key = body.idempotency_key or None
    if key is not None:
        existing = repository.by_idempotency_key(session, account_id=caller.account_id, key=key)
        if existing is not None:
            if now() - as_utc(existing.created_at) < IDEMPOTENCY_WINDOW:
                return WebhookMessage.of(existing)
            repository.forget_idempotency_key(session, existing)
    written: list[str] = []
    event = outbox.Event(body.type, body.data)

    def write() -> None:
        written.append(
            outbox.publish(session, account_id=caller.account_id, event=event, idempotency_key=key)
        )

    if not repository.claim_key(session, write):
        # A publish with the same key committed meanwhile.
        existing = repository.by_idempotency_key(session, account_id=caller.account_id, key=key)
        assert existing is not None
        return WebhookMessage.of(existing)
    return _message(session, caller, written[0])


def _message(session: Session, caller: Caller, message_id: str) -> WebhookMessage:
    row = repository.get_message(session, account_id=caller.account_id, message_id=message_id)
    if row is None:
        raise NotFound(f"webhook message {message_id!r} not found")
    return WebhookMessage.of(row)


def get_message(*, session: Session, caller: Caller, message_id: str) -> WebhookMessage:
    return _message(session, caller, message_id)


def list_messages(
    *, session: Session, caller: Caller, page: PageRequest, type: str, max_page_bytes: int
) -> WebhookMessageList:
    """One page of the account's messages, newest first, of one type if `type` is given;
    cut short at `max_page_bytes` (a message's data may be large)."""
    scope = scope_of("webhook_messages.list", caller.account_id, type)
    rows, next_cursor = id_page(
        page,
        scope=scope,
        fetch=lambda before, n: repository.message_page(
            session, account_id=caller.account_id, type=type, before=before, limit=n
        ),
    )
    items, next_cursor = within_bytes(
        page,
        rows=rows,
        rendered=(WebhookMessage.of(row) for row in rows),
        next_cursor=next_cursor,
        scope=scope,
        max_bytes=max_page_bytes,
    )
    return WebhookMessageList(
        items=items,
        pagination=Pagination(
            next_cursor=next_cursor,
            total=repository.message_count(session, account_id=caller.account_id, type=type),
        ),
    )


# --- Deliveries ---------------------------------------------------------------------------


def list_deliveries(
    *,
    session: Session,
    caller: Caller,
    endpoint_id: str,
    page: PageRequest,
    status: DeliveryStatus | None,
    event_type: str,
) -> WebhookDeliveryList:
    """One page of an endpoint's deliveries, newest first, with their attempts."""
    endpoint = _find(session, caller, endpoint_id)
    where = repository.DeliveryFilter(
        endpoint_id=endpoint.id,
        status=ROW_OF_STATUS[status] if status is not None else "",
        event_type=event_type,
    )
    rows, next_cursor = id_page(
        page,
        scope=scope_of("webhook_deliveries.list", endpoint.id, where.status, event_type),
        fetch=lambda before, n: repository.delivery_page(session, where, before=before, limit=n),
    )
    attempts = repository.attempts_of(session, [r.id for r in rows])
    return WebhookDeliveryList(
        items=[WebhookDelivery.of(r, url=endpoint.url, attempts=attempts[r.id]) for r in rows],
        pagination=Pagination(
            next_cursor=next_cursor, total=repository.delivery_count(session, where)
        ),
    )


def _active(session: Session, caller: Caller, endpoint_id: str) -> EndpointRow:
    endpoint = _find(session, caller, endpoint_id)
    if not endpoint.enabled:
        raise FailedPrecondition(
            f"webhook endpoint {endpoint_id!r} is disabled ({endpoint.disabled_reason}); "
            "enable it first"
        )
    return endpoint


def retry(
    *, session: Session, caller: Caller, endpoint_id: str, delivery_id: str
) -> WebhookDelivery:
    """Send a delivery again now (a pending one: now rather than at its next time)."""
    endpoint = _active(session, caller, endpoint_id)
    row = repository.get_delivery(session, endpoint_id=endpoint.id, delivery_id=delivery_id)
    if row is None:
        raise NotFound(f"webhook delivery {delivery_id!r} not found")
    outbox.requeue(session, [row.id])
    session.refresh(row)
    attempts = repository.attempts_of(session, [row.id])
    return WebhookDelivery.of(row, url=endpoint.url, attempts=attempts[row.id])


def recover(*, session: Session, caller: Caller, endpoint_id: str, since: str) -> RecoverResponse:
    """Send again every failed (or disabled) delivery of the endpoint since `since`."""
    try:
        start = as_utc(datetime.fromisoformat(since))
    except ValueError as exc:
        raise InvalidArgument.field("since", "must be an RFC 3339 time") from exc
    endpoint = _active(session, caller, endpoint_id)
    ids = repository.failed_since(session, endpoint_id=endpoint.id, since=start)
    outbox.requeue(session, ids)
    return RecoverResponse(requeued=len(ids))


def send_test(*, session: Session, caller: Caller, endpoint_id: str) -> WebhookMessage:
    """A `webhook.test` event to this endpoint alone."""
    endpoint = _active(session, caller, endpoint_id)
    message_id = outbox.publish(
        session,
        account_id=caller.account_id,
        event=outbox.Event(
            outbox.TEST_EVENT,
            {"endpointId": endpoint.id, "message": "a test event from cadenya-server"},
        ),
        endpoint=endpoint,
    )
    return _message(session, caller, message_id)
