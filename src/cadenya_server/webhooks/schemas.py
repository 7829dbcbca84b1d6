"""Webhook endpoints, messages and deliveries on the wire."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from cadenya_server.kit.clock import rfc3339
from cadenya_server.kit.schemas import (
    HOST_AND_PORT_PATTERN,
    ZERO_TIME,
    AccountResourceMetadata,
    CreateAccountResourceMetadata,
    LongText,
    Pagination,
    RequestModel,
    ShortText,
    UpdateAccountResourceMetadata,
    WireModel,
)
from cadenya_server.models import WebhookAttempt as AttemptRow
from cadenya_server.models import WebhookDelivery as DeliveryRow
from cadenya_server.models import WebhookEndpoint as EndpointRow
from cadenya_server.models import WebhookMessage as MessageRow

# A dotted event type: `profile.created`, `objective_event.tool_called`.
EventType = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200, pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)+$"),
]
MAX_EVENT_TYPES = 100
MAX_RATE = 10_000


class EndpointStatus(StrEnum):
    ACTIVE = "WEBHOOK_ENDPOINT_STATUS_ACTIVE"
    DISABLED = "WEBHOOK_ENDPOINT_STATUS_DISABLED"


class WebhookEndpointSpec(WireModel):
    url: str = Field(description="An absolute http(s) URL whose host the account trusts")
    description: str = ""
    event_types: list[str] = Field(
        [], description="The event types sent to this endpoint; empty: every type"
    )
    ordered: bool = Field(
        False,
        description="Deliver strictly in commit order: a message waits until the one "
        "before it succeeded or was given up",
    )
    rate_limit_per_second: int = Field(
        0, description="At most this many attempts a second across every worker; 0: no limit"
    )


class WebhookEndpointInfo(WireModel):
    status: EndpointStatus
    disabled_reason: str = ""
    failing_since: str = Field(
        "", description='The first failure since the last success; "" while the endpoint succeeds'
    )
    last_success_at: str = ""
    updated_at: str = ""


class WebhookEndpoint(WireModel):
    metadata: AccountResourceMetadata
    spec: WebhookEndpointSpec
    info: WebhookEndpointInfo

    @classmethod
    def of(cls, row: EndpointRow) -> WebhookEndpoint:
        return cls(
            metadata=AccountResourceMetadata.of(row),
            spec=WebhookEndpointSpec(
                url=row.url,
                description=row.description,
                event_types=list(row.event_types),
                ordered=row.ordered,
                rate_limit_per_second=row.rate_limit_per_second,
            ),
            info=WebhookEndpointInfo(
                status=EndpointStatus.ACTIVE if row.enabled else EndpointStatus.DISABLED,
                disabled_reason=row.disabled_reason,
                failing_since=rfc3339(row.failing_since),
                last_success_at=rfc3339(row.last_success_at),
                updated_at=rfc3339(row.updated_at),
            ),
        )


class WebhookEndpointList(WireModel):
    items: list[WebhookEndpoint]
    pagination: Pagination


# An absolute http(s) URL whose host is an ASCII DNS name or an IPv4 address (IDN hosts
# in their A-label form); the service checks the rest and that the host is trusted.
URL_PATTERN = rf"^https?://{HOST_AND_PORT_PATTERN}([/?#][!-~]*)?$"
_MASK_PATH = (
    r"(metadata\.(name|externalId|labels)"
    r"|spec\.(url|description|eventTypes|ordered|rateLimitPerSecond))"
)
RFC3339_PATTERN = (
    r"^[12][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]"
    r":[0-5][0-9](\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)


class WebhookEndpointSpecInput(RequestModel):
    url: str = Field("", max_length=2048, pattern=URL_PATTERN)
    description: LongText = ""
    event_types: list[EventType] = Field([], max_length=MAX_EVENT_TYPES)
    ordered: bool = False
    rate_limit_per_second: int = Field(0, ge=0, le=MAX_RATE)


class CreateWebhookEndpointSpec(WebhookEndpointSpecInput):
    url: str = Field(max_length=2048, pattern=URL_PATTERN)


class CreateWebhookEndpointRequest(RequestModel):
    metadata: CreateAccountResourceMetadata
    spec: CreateWebhookEndpointSpec


class UpdateWebhookEndpointRequest(RequestModel):
    metadata: UpdateAccountResourceMetadata | None = None
    spec: WebhookEndpointSpecInput | None = None
    update_mask: str = Field(
        "",
        max_length=1000,
        pattern=rf"^({_MASK_PATH}(,{_MASK_PATH})*)?$",
        description="Comma-separated paths to change (metadata.name, metadata.externalId, "
        "metadata.labels, spec.url, spec.description, spec.eventTypes, spec.ordered, "
        "spec.rateLimitPerSecond); without it, the fields present in the body.",
    )


# --- Messages -----------------------------------------------------------------------------


class PublishMessageRequest(RequestModel):
    type: EventType
    data: dict[str, Any]
    idempotency_key: ShortText = Field(
        "",
        description="The same key within 24 hours returns the first message and sends nothing new",
    )


class WebhookMessage(WireModel):
    id: str
    type: str
    timestamp: str
    data: dict[str, Any]
    idempotency_key: str = ""

    @classmethod
    def of(cls, row: MessageRow) -> WebhookMessage:
        return cls(
            id=row.id,
            type=row.type,
            timestamp=rfc3339(row.created_at),
            data=row.data,
            idempotency_key=row.idempotency_key or "",
        )


class WebhookMessageList(WireModel):
    items: list[WebhookMessage]
    pagination: Pagination


# --- Deliveries ---------------------------------------------------------------------------


class DeliveryStatus(StrEnum):
    PENDING = "WEBHOOK_DELIVERY_STATUS_PENDING"
    COMPLETED = "WEBHOOK_DELIVERY_STATUS_COMPLETED"
    FAILED = "WEBHOOK_DELIVERY_STATUS_FAILED"
    DISABLED = "WEBHOOK_DELIVERY_STATUS_DISABLED"


STATUS_OF_ROW = {
    "pending": DeliveryStatus.PENDING,
    "completed": DeliveryStatus.COMPLETED,
    "failed": DeliveryStatus.FAILED,
    "disabled": DeliveryStatus.DISABLED,
}
ROW_OF_STATUS = {wire: row for row, wire in STATUS_OF_ROW.items()}


class OperationMetadata(WireModel):
    id: str
    account_id: str
    workspace_id: str = ""
    labels: dict[str, str] = {}
    created_at: str
    external_id: str = ""
    profile_id: str = ""


class WebhookAttempt(WireModel):
    attempted_at: str
    http_status_code: int
    error_message: str
    latency_ms: int

    @classmethod
    def of(cls, row: AttemptRow) -> WebhookAttempt:
        return cls(
            attempted_at=rfc3339(row.attempted_at),
            http_status_code=row.http_status_code,
            error_message=row.error_message,
            latency_ms=row.latency_ms,
        )


class WebhookDeliveryData(WireModel):
    """The official client's WebhookDeliveryData, with our own fields after its own."""

    agent_id: str = ""
    objective_id: str = ""
    objective_event_id: str = ""
    webhook_url: str
    webhook_id: str = Field(description="The message id (msg_…), the webhook-id header")
    status: DeliveryStatus
    attempt_count: int
    last_attempt_at: str
    http_status_code: int
    error_message: str
    latency_ms: int
    event_type: str
    response_headers: dict[str, str]
    response_content_length: str
    endpoint_id: str
    next_attempt_at: str = Field(description='When the next attempt is due; "" for none')
    attempts: list[WebhookAttempt]


class WebhookDelivery(WireModel):
    metadata: OperationMetadata
    data: WebhookDeliveryData

    @classmethod
    def of(cls, row: DeliveryRow, *, url: str, attempts: list[AttemptRow]) -> WebhookDelivery:
        return cls(
            metadata=OperationMetadata(
                id=row.id, account_id=row.account_id, created_at=rfc3339(row.created_at)
            ),
            data=WebhookDeliveryData(
                webhook_url=url,
                webhook_id=row.message_id,
                status=STATUS_OF_ROW[row.status],
                attempt_count=row.attempt_count,
                last_attempt_at=rfc3339(row.last_attempt_at) or ZERO_TIME,
                http_status_code=row.http_status_code,
                error_message=row.error_message,
                latency_ms=row.latency_ms,
                event_type=row.event_type,
                response_headers=row.response_headers,
                response_content_length=str(row.response_content_length),
                endpoint_id=row.endpoint_id,
                next_attempt_at=rfc3339(row.next_attempt_at) if row.status == "pending" else "",
                attempts=[WebhookAttempt.of(a) for a in attempts],
            ),
        )


class WebhookDeliveryList(WireModel):
    items: list[WebhookDelivery]
    pagination: Pagination


class RecoverRequest(RequestModel):
    since: str = Field(
        pattern=RFC3339_PATTERN,
        description="RFC 3339: every failed delivery since then is sent again",
    )


class RecoverResponse(WireModel):
    requeued: int
