"""API keys on the wire."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, Field

from cadenya_server.auth import api_key_tokens, scopes
from cadenya_server.kit import update_mask
from cadenya_server.kit.clock import rfc3339
from cadenya_server.kit.schemas import (
    AccountResourceMetadata,
    CreateAccountResourceMetadata,
    LongText,
    Pagination,
    RequestModel,
    UpdateAccountResourceMetadata,
    WireModel,
    WorkspaceRef,
)
from cadenya_server.models import ApiKey as ApiKeyRow
from cadenya_server.models import Workspace as WorkspaceRow
from cadenya_server.profiles.schemas import Profile
from cadenya_server.workspaces.schemas import Workspace

MAX_ASSIGNMENTS = 1000
# Checked by scopes.normalize, in words of its own.
Scope = Annotated[str, Field(json_schema_extra={"enum": sorted(scopes.VALID)})]


class ApiKeyState(StrEnum):
    ENABLED = "STATE_ENABLED"
    DISABLED = "STATE_DISABLED"


class WorkspaceAssignment(WireModel):
    workspace_id: str


class ApiKeySpec(WireModel):
    token: str = Field(
        description="The whole token in the responses of create, rotate and reveal; "
        "elsewhere its prefix and last four characters."
    )
    description: str = ""
    permissions: list[str] = []
    all_workspaces: bool = False
    workspace_assignments: list[WorkspaceAssignment] = []
    default: bool = False


class ApiKeyInfo(WireModel):
    created_by: Profile = Field(
        description="The profile that created the key; every field empty in a listing "
        "without includeInfo, or when that profile no longer exists."
    )
    workspaces: list[AccountResourceMetadata] = Field(
        [],
        description="The active workspaces the key reaches; empty in a listing without "
        "includeInfo.",
    )
    last_used_at: str = Field(
        "",
        description="Extension (not in the official clients): when the key last "
        "authenticated, to the minute; empty if never.",
    )


class ApiKey(WireModel):
    metadata: AccountResourceMetadata
    spec: ApiKeySpec
    state: ApiKeyState
    info: ApiKeyInfo

    @classmethod
    def of(
        cls,
        row: ApiKeyRow,
        *,
        token: str | None,
        assigned: list[str],
        created_by: Profile,
        reaches: list[WorkspaceRow],
    ) -> ApiKey:
        """The wire form of a key; without `token`, the token is masked."""
        return cls(
            metadata=AccountResourceMetadata.of(row),
            spec=ApiKeySpec(
                token=token or api_key_tokens.masked(row.token_hint),
                description=row.description,
                permissions=row.permissions,
                all_workspaces=row.all_workspaces,
                workspace_assignments=[WorkspaceAssignment(workspace_id=w) for w in assigned],
                default=row.is_default,
            ),
            state=ApiKeyState.ENABLED if row.enabled else ApiKeyState.DISABLED,
            info=ApiKeyInfo(
                created_by=created_by,
                workspaces=[Workspace.of(w).metadata for w in reaches],
                last_used_at=rfc3339(row.last_used_at),
            ),
        )


class ApiKeyList(WireModel):
    items: list[ApiKey]
    pagination: Pagination


class WorkspaceAssignmentInput(RequestModel):
    workspace_id: WorkspaceRef


class ApiKeySpecInput(RequestModel):
    # A key that reaches every workspace has no single assignments.
    model_config = ConfigDict(
        json_schema_extra={
            "if": {"required": ["allWorkspaces"], "properties": {"allWorkspaces": {"const": True}}},
            "then": {"properties": {"workspaceAssignments": {"maxItems": 0}}},
        }
    )

    description: LongText = ""
    permissions: list[Scope] = Field([], max_length=100)
    all_workspaces: bool = False
    workspace_assignments: list[WorkspaceAssignmentInput] = Field([], max_length=MAX_ASSIGNMENTS)


class CreateApiKeyRequest(RequestModel):
    metadata: CreateAccountResourceMetadata
    spec: ApiKeySpecInput = ApiKeySpecInput()


UPDATABLE = frozenset(
    {
        "metadata.name",
        "metadata.externalId",
        "metadata.labels",
        "spec.description",
        "spec.permissions",
        "spec.allWorkspaces",
        "spec.workspaceAssignments",
    }
)
ApiKeyMask = update_mask.mask_of(UPDATABLE)


class UpdateApiKeyRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra=update_mask.named_means_given("metadata.name"))

    metadata: UpdateAccountResourceMetadata | None = None
    spec: ApiKeySpecInput | None = None
    update_mask: ApiKeyMask = ""


class WorkspaceRequest(RequestModel):
    """The body of :addWorkspace and :removeWorkspace."""

    workspace_id: WorkspaceRef
