"""Workspaces on the wire."""

from __future__ import annotations

from enum import StrEnum

from pydantic import ConfigDict

from cadenya_server.kit import update_mask
from cadenya_server.kit.schemas import (
    AccountResourceMetadata,
    CreateAccountResourceMetadata,
    LongText,
    Pagination,
    RequestModel,
    UpdateAccountResourceMetadata,
    WireModel,
)
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
            metadata=AccountResourceMetadata.of(row),
            spec=WorkspaceSpec(description=row.description),
            status=WIRE_STATUS[row.status],
            info=WorkspaceInfo(),
        )


class WorkspaceSpecInput(RequestModel):
    description: LongText = ""


class CreateWorkspaceRequest(RequestModel):
    metadata: CreateAccountResourceMetadata
    spec: WorkspaceSpecInput = WorkspaceSpecInput()


UPDATABLE = frozenset(
    {"metadata.name", "metadata.externalId", "metadata.labels", "spec.description"}
)
WorkspaceMask = update_mask.mask_of(UPDATABLE)


class UpdateWorkspaceRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra=update_mask.named_means_given("metadata.name"))

    metadata: UpdateAccountResourceMetadata | None = None
    spec: WorkspaceSpecInput | None = None
    update_mask: WorkspaceMask = ""


class WorkspaceList(WireModel):
    items: list[Workspace]
    pagination: Pagination


class SortOrder(StrEnum):
    """Order of GET /v1/workspaces: by creation time."""

    ASC = "asc"
    DESC = "desc"
