"""Who may read and manage webhooks: `webhooks:read` for endpoints, messages and the
delivery log; `webhooks:manage` for every change and action. Administrators hold both."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from cadenya_server.auth import scopes
from cadenya_server.auth.caller import Caller
from cadenya_server.auth.dependencies import rule
from cadenya_server.kit.params import path_id

WebhooksReader = Annotated[Caller, Depends(rule(scopes.WEBHOOKS_READ))]
WebhooksManager = Annotated[Caller, Depends(rule(scopes.WEBHOOKS_MANAGE))]

EndpointId = path_id("whep", alias="id")
DeliveryId = path_id("whdel", alias="deliveryId")
MessageId = path_id("msg", alias="id")
