"""Every event type the server emits and the schema of its `data`, for the OpenAPI
document's `webhooks` section."""

from __future__ import annotations

from pydantic import BaseModel

from cadenya_server import outbox
from cadenya_server.accounts.schemas import Account
from cadenya_server.api_keys.schemas import ApiKey
from cadenya_server.kit.schemas import WireModel
from cadenya_server.members.schemas import WorkspaceMemberEvent
from cadenya_server.profiles.schemas import UserProfile
from cadenya_server.sso.schemas import SsoConnection
from cadenya_server.trusted_endpoints.schemas import TrustedEndpoint
from cadenya_server.webhooks.schemas import WebhookEndpoint
from cadenya_server.workspaces.schemas import Workspace


class TestEventData(WireModel):
    endpoint_id: str
    message: str


class PublishedEventData(BaseModel):
    """Whatever the publishing service sent (POST /v1/account/webhook_messages)."""

    model_config = {"extra": "allow"}


# By the part of the type before its dot.
_DATA_BY_RESOURCE: dict[str, type[BaseModel]] = {
    "profile": UserProfile,
    "workspace": Workspace,
    "member": WorkspaceMemberEvent,
    "api_key": ApiKey,
    "trusted_endpoint": TrustedEndpoint,
    "webhook_endpoint": WebhookEndpoint,
    "sso_connection": SsoConnection,
    # With its secrets blank: an event never carries one.
    "account": Account,
}


def data_schemas() -> dict[str, tuple[type[BaseModel], str]]:
    """Event type → (the model of its data, a sentence about it)."""
    described: dict[str, tuple[type[BaseModel], str]] = {}
    for action, event_type in sorted(outbox.EVENT_TYPES.items(), key=lambda item: item[1]):
        resource = event_type.partition(".")[0]
        described[event_type] = (
            _DATA_BY_RESOURCE[resource],
            f"Emitted when the audit trail records `{action}`, in the same transaction; "
            "`data` is the resource as the API returns it to an administrator (after the "
            "change; as it was, for a deletion), never a secret.",
        )
    described[outbox.TEST_EVENT] = (TestEventData, "Sent by `:sendTest` to one endpoint.")
    described["{published}"] = (
        PublishedEventData,
        "Any dotted type another service publishes with POST /v1/account/webhook_messages "
        "(e.g. `objective_event.tool_called`); `data` is what it sent.",
    )
    return described
