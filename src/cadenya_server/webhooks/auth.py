"""Who may read and manage webhooks: `webhooks:read` for endpoints, messages and the
delivery log; `webhooks:manage` for every change and action. Administrators hold both."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path

from cadenya_server.auth import scopes
from cadenya_server.auth.caller import Caller
from cadenya_server.auth.dependencies import rule

WebhooksReader = Annotated[Caller, Depends(rule(scopes.WEBHOOKS_READ))]
WebhooksManager = Annotated[Caller, Depends(rule(scopes.WEBHOOKS_MANAGE))]

EndpointId = Annotated[str, Path(alias="id", description="A whep_… id")]
DeliveryId = Annotated[str, Path(alias="deliveryId", description="A whdel_… id")]
MessageId = Annotated[str, Path(alias="id", description="A msg_… id")]
