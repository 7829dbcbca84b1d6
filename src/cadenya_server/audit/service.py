"""The audit trail: every change on the account plane, in the transaction that made it."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from cadenya_server.auth.caller import Caller
from cadenya_server.kit.ids import new_id
from cadenya_server.models import AuditEvent


def record(
    session: Session,
    *,
    caller: Caller,
    action: str,
    resource_id: str,
    details: dict[str, Any] | None = None,
) -> None:
    """Note that `caller` did `action` (e.g. `workspace.create`) to `resource_id`."""
    session.add(
        AuditEvent(
            id=new_id("audit"),
            account_id=caller.account_id,
            actor_profile_id=caller.profile_id,
            api_key_id=caller.api_key_id,
            action=action,
            resource_id=resource_id,
            request_id=caller.request_id,
            details=details or {},
        )
    )
