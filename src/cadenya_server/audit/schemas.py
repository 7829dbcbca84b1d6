"""Audit events on the wire."""

from __future__ import annotations

from typing import Any

from cadenya_server.kit.clock import rfc3339
from cadenya_server.kit.schemas import Pagination, WireModel
from cadenya_server.models import AuditEvent as AuditEventRow


class AuditEvent(WireModel):
    """One change on the account plane: who (a profile, and the API key if one was used),
    what (`action`, e.g. `workspace.create`, on `resourceId`), and in which request."""

    id: str
    account_id: str
    actor_profile_id: str
    api_key_id: str
    action: str
    resource_id: str
    request_id: str
    details: dict[str, Any]
    created_at: str

    @classmethod
    def of(cls, row: AuditEventRow) -> AuditEvent:
        return cls(
            id=row.id,
            account_id=row.account_id,
            actor_profile_id=row.actor_profile_id,
            api_key_id=row.api_key_id,
            action=row.action,
            resource_id=row.resource_id,
            request_id=row.request_id,
            details=row.details,
            created_at=rfc3339(row.created_at),
        )


class AuditEventList(WireModel):
    items: list[AuditEvent]
    pagination: Pagination
