"""The audit trail: every change on the account plane, in the transaction that made it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from sqlalchemy.orm import Session

from cadenya_server import outbox
from cadenya_server.audit import repository
from cadenya_server.audit.schemas import AuditEvent, AuditEventList
from cadenya_server.auth.caller import Caller
from cadenya_server.kit.ids import new_id
from cadenya_server.kit.pagination import PageRequest, id_page, scope_of
from cadenya_server.kit.schemas import Pagination
from cadenya_server.models import AuditEvent as AuditEventRow


def record(
    session: Session,
    *,
    caller: Caller,
    action: str,
    resource_id: str,
    details: dict[str, Any] | None = None,
    resource: BaseModel | None = None,
) -> None:
    """Note that `caller` did `action` (e.g. `workspace.create`) to `resource_id`.

    A change also emits its webhook event, in this same transaction: `resource` is what
    the API returns to an administrator for it (after the change; before it, for a
    deletion), never a secret.
    """
    session.add(
        AuditEventRow(
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
    event_type = outbox.EVENT_TYPES.get(action)
    if event_type is not None:
        if resource is None:
            raise TypeError(f"the change {action!r} emits an event: pass its resource")
        outbox.emit(
            session,
            account_id=caller.account_id,
            events=[outbox.Event(event_type, resource.model_dump(mode="json", by_alias=True))],
        )


def list_events(
    *,
    session: Session,
    caller: Caller,
    page: PageRequest,
    action: str = "",
    actor_profile_id: str = "",
) -> AuditEventList:
    """One page of the account's audit trail, newest first; `action`, `actor_profile_id`
    ("" for any) narrow it."""
    where = repository.AuditFilter(
        account_id=caller.account_id, action=action, actor_profile_id=actor_profile_id
    )
    scope = scope_of("audit.list", caller.account_id, action, actor_profile_id)
    # Newest first: the page continues before the cursor's id.
    rows, next_cursor = id_page(
        page,
        scope=scope,
        fetch=lambda before, n: repository.page(session, where, before=before, limit=n),
    )
    return AuditEventList(
        items=[AuditEvent.of(row) for row in rows],
        pagination=Pagination(next_cursor=next_cursor, total=repository.count(session, where)),
    )
