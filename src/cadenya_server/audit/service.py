"""The audit trail: every change on the account plane, in the transaction that made it."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

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
) -> None:
    """Note that `caller` did `action` (e.g. `workspace.create`) to `resource_id`."""
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


def list_events(*, session: Session, caller: Caller, page: PageRequest) -> AuditEventList:
    """One page of the account's audit trail, newest first."""
    scope = scope_of("audit.list", caller.account_id)
    # Newest first: the page continues before the cursor's id.
    rows, next_cursor = id_page(
        page,
        scope=scope,
        fetch=lambda before, n: repository.page(
            session, account_id=caller.account_id, before=before, limit=n
        ),
    )
    return AuditEventList(
        items=[AuditEvent.of(row) for row in rows],
        pagination=Pagination(
            next_cursor=next_cursor, total=repository.count(session, account_id=caller.account_id)
        ),
    )
