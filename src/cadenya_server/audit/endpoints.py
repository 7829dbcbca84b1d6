"""/v1/account/audit_events: the audit trail (not in the client)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from cadenya_server.audit import service
from cadenya_server.audit.schemas import AuditEventList
from cadenya_server.auth.dependencies import AdminCaller
from cadenya_server.kit.params import Page, query_id
from cadenya_server.kit.runtime import DbSession

router = APIRouter(prefix="/v1/account", tags=["Audit"])

# An action's grammar (`workspace.member.add`): anything else, control characters
# included, is 400 before the database sees it.
Action = Annotated[
    str,
    Query(
        max_length=64,
        pattern=r"^([a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*)?$",
        description="Only events of this action, e.g. `workspace.create`",
    ),
]
ActorProfileId = query_id(
    "profile", alias="actorProfileId", description="Only events of the profile that acted"
)


@router.get("/audit_events", operation_id="audit.list", summary="List audit events")
def list_audit_events(
    caller: AdminCaller,
    session: DbSession,
    page: Page,
    action: Action = "",
    actor_profile_id: ActorProfileId = "",
) -> AuditEventList:
    """Lists the changes made to the account, newest first. Administrators only.

    Every change on the account plane (workspaces, members, profiles, API keys,
    rotations, …) writes one event in the same transaction as the change, so an
    event exists exactly when its change happened. `actorProfileId` is the profile
    that acted, `apiKeyId` the API key it used ("" for a JWT), `requestId` the
    X-Request-Id of the call, and `details` a small object that depends on `action`.
    """
    return service.list_events(
        session=session,
        caller=caller,
        page=page,
        action=action,
        actor_profile_id=actor_profile_id,
    )
