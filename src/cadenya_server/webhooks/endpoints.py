"""/v1/account/webhook_endpoints and /v1/account/webhook_messages.

Reads take `webhooks:read`, changes `webhooks:manage`; administrators hold both.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from cadenya_server.kit.params import NoBody, Page
from cadenya_server.kit.runtime import AppRuntime, DbSession
from cadenya_server.kit.schemas import SINGLE_LINE, Empty
from cadenya_server.webhooks import service
from cadenya_server.webhooks.auth import (
    DeliveryId,
    EndpointId,
    MessageId,
    WebhooksManager,
    WebhooksReader,
)
from cadenya_server.webhooks.schemas import (
    CreateWebhookEndpointRequest,
    DeliveryStatus,
    PublishMessageRequest,
    RecoverRequest,
    RecoverResponse,
    UpdateWebhookEndpointRequest,
    WebhookDelivery,
    WebhookDeliveryList,
    WebhookEndpoint,
    WebhookEndpointList,
    WebhookMessage,
    WebhookMessageList,
)

router = APIRouter(prefix="/v1/account", tags=["Webhooks"])

# Single-line: a control character is refused before PostgreSQL sees it (NUL is an error there).
TypeFilter = Annotated[
    str, Query(max_length=200, pattern=SINGLE_LINE, description="Only messages of this type")
]


@router.get("/webhook_endpoints", operation_id="webhookEndpoints.list")
def list_webhook_endpoints(
    caller: WebhooksReader,
    session: DbSession,
    page: Page,
) -> WebhookEndpointList:
    """Lists the account's webhook endpoints, oldest first."""
    return service.list_endpoints(session=session, caller=caller, page=page)


@router.post("/webhook_endpoints", operation_id="webhookEndpoints.create")
def create_webhook_endpoint(
    caller: WebhooksManager,
    session: DbSession,
    runtime: AppRuntime,
    body: CreateWebhookEndpointRequest,
) -> WebhookEndpoint:
    """Adds an endpoint. Its URL's host must be trusted (a trusted endpoint of the
    account): otherwise 400 FAILED_PRECONDITION names the trusted endpoint to add; so
    too when the account holds its limit of webhook endpoints."""
    return service.create_endpoint(
        session=session,
        caller=caller,
        body=body,
        max_endpoints=runtime.settings.max_webhook_endpoints_per_account,
    )


@router.get("/webhook_endpoints/{id}", operation_id="webhookEndpoints.retrieve")
def get_webhook_endpoint(
    caller: WebhooksReader, session: DbSession, endpoint_id: EndpointId
) -> WebhookEndpoint:
    """Gets a webhook endpoint."""
    return service.get_endpoint(session=session, caller=caller, endpoint_id=endpoint_id)


@router.patch("/webhook_endpoints/{id}", operation_id="webhookEndpoints.update")
def update_webhook_endpoint(
    caller: WebhooksManager,
    session: DbSession,
    endpoint_id: EndpointId,
    body: UpdateWebhookEndpointRequest,
) -> WebhookEndpoint:
    """Changes the fields `updateMask` names (without one, those in the body)."""
    return service.update_endpoint(
        session=session, caller=caller, endpoint_id=endpoint_id, body=body
    )


@router.delete("/webhook_endpoints/{id}", operation_id="webhookEndpoints.delete")
def delete_webhook_endpoint(
    caller: WebhooksManager, session: DbSession, endpoint_id: EndpointId
) -> Empty:
    """Deletes an endpoint and its delivery log."""
    service.delete_endpoint(session=session, caller=caller, endpoint_id=endpoint_id)
    return Empty()


@router.post("/webhook_endpoints/{id}:enable", operation_id="webhookEndpoints.enable")
def enable_webhook_endpoint(
    caller: WebhooksManager, session: DbSession, endpoint_id: EndpointId, _body: NoBody = None
) -> WebhookEndpoint:
    """Enables an endpoint; its failures so far are forgotten."""
    return service.set_enabled(
        session=session, caller=caller, endpoint_id=endpoint_id, enabled=True
    )


@router.post("/webhook_endpoints/{id}:disable", operation_id="webhookEndpoints.disable")
def disable_webhook_endpoint(
    caller: WebhooksManager, session: DbSession, endpoint_id: EndpointId, _body: NoBody = None
) -> WebhookEndpoint:
    """Disables an endpoint: its pending deliveries are not sent (`:recover` sends them)."""
    return service.set_enabled(
        session=session, caller=caller, endpoint_id=endpoint_id, enabled=False
    )


@router.get("/webhook_endpoints/{id}/deliveries", operation_id="webhookEndpoints.listDeliveries")
def list_webhook_deliveries(
    caller: WebhooksReader,
    session: DbSession,
    endpoint_id: EndpointId,
    page: Page,
    status: Annotated[DeliveryStatus | None, Query(description="Only this status")] = None,
    event_type: Annotated[
        str,
        Query(
            alias="eventType",
            max_length=200,
            pattern=SINGLE_LINE,
            description="Only this event type",
        ),
    ] = "",
) -> WebhookDeliveryList:
    """The endpoint's delivery log, newest first, each delivery with its attempts."""
    return service.list_deliveries(
        session=session,
        caller=caller,
        endpoint_id=endpoint_id,
        page=page,
        status=status,
        event_type=event_type,
    )


@router.post(
    "/webhook_endpoints/{id}/deliveries/{deliveryId}:retry",
    operation_id="webhookEndpoints.retryDelivery",
)
def retry_webhook_delivery(
    caller: WebhooksManager,
    session: DbSession,
    endpoint_id: EndpointId,
    delivery_id: DeliveryId,
    _body: NoBody = None,
) -> WebhookDelivery:
    """Sends a delivery again now."""
    return service.retry(
        session=session, caller=caller, endpoint_id=endpoint_id, delivery_id=delivery_id
    )


@router.post("/webhook_endpoints/{id}:recover", operation_id="webhookEndpoints.recover")
def recover_webhook_endpoint(
    caller: WebhooksManager, session: DbSession, endpoint_id: EndpointId, body: RecoverRequest
) -> RecoverResponse:
    """Sends again every failed delivery of the endpoint since `since`."""
    return service.recover(
        session=session, caller=caller, endpoint_id=endpoint_id, since=body.since
    )


@router.post("/webhook_endpoints/{id}:sendTest", operation_id="webhookEndpoints.sendTest")
def send_test_webhook(
    caller: WebhooksManager, session: DbSession, endpoint_id: EndpointId, _body: NoBody = None
) -> WebhookMessage:
    """Sends a `webhook.test` event to this endpoint alone."""
    return service.send_test(session=session, caller=caller, endpoint_id=endpoint_id)


@router.post("/webhook_messages", operation_id="webhookMessages.create")
def publish_webhook_message(
    caller: WebhooksManager, session: DbSession, body: PublishMessageRequest
) -> WebhookMessage:
    """Signs and sends an event another service made (e.g. an agent runtime's
    `objective_event.tool_called`) to every endpoint that takes its type. The same
    `idempotencyKey` within 24 hours returns the first message and sends nothing new."""
    return service.publish(session=session, caller=caller, body=body)


@router.get("/webhook_messages", operation_id="webhookMessages.list")
def list_webhook_messages(
    caller: WebhooksReader,
    session: DbSession,
    runtime: AppRuntime,
    page: Page,
    type: TypeFilter = "",
) -> WebhookMessageList:
    """The account's messages, newest first."""
    return service.list_messages(
        session=session,
        caller=caller,
        page=page,
        type=type,
        max_page_bytes=runtime.settings.max_page_bytes,
    )


@router.get("/webhook_messages/{id}", operation_id="webhookMessages.retrieve")
def get_webhook_message(
    caller: WebhooksReader, session: DbSession, message_id: MessageId
) -> WebhookMessage:
    """Gets a message."""
    return service.get_message(session=session, caller=caller, message_id=message_id)
