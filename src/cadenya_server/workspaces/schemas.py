"""Workspaces on the wire."""

from __future__ import annotations

from enum import StrEnum

from cadenya_server.kit.clock import rfc3339
from cadenya_server.kit.schemas import AccountResourceMetadata, WireModel
from cadenya_server.models import Workspace as WorkspaceRow


class WorkspaceStatus(StrEnum):
    ENABLED = "STATUS_ENABLED"
    DISABLED = "STATUS_DISABLED"
    ARCHIVED = "STATUS_ARCHIVED"


WIRE_STATUS = {
    "enabled": WorkspaceStatus.ENABLED,
    "disabled": WorkspaceStatus.DISABLED,
    "archived": WorkspaceStatus.ARCHIVED,
}


class WorkspaceSpec(WireModel):
    description: str = ""


class WorkspaceInfo(WireModel):
    """Counts of the workspace's agent-plane resources, which this server does not host."""

    total_available_tools: int = 0
    total_memory_entries: int = 0
    total_agents: int = 0
    total_agent_variations: int = 0


class Workspace(WireModel):
    metadata: AccountResourceMetadata
    spec: WorkspaceSpec
    status: WorkspaceStatus
    info: WorkspaceInfo

    @classmethod
    def of(cls, row: WorkspaceRow) -> Workspace:
        return cls(
            metadata=AccountResourceMetadata(
                id=row.id,
                account_id=row.account_id,
                name=row.name,
                profile_id=row.creator_profile_id,
                external_id=row.external_id,
                labels=row.labels,
                created_at=rfc3339(row.created_at),
            ),
            spec=WorkspaceSpec(description=row.description),
            status=WIRE_STATUS[row.status],
            info=WorkspaceInfo(),
        )
