"""Who may read and change workspaces and their members."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path

from cadenya_server.auth.caller import Caller
from cadenya_server.auth.dependencies import rule

WorkspacesReader = Annotated[Caller, Depends(rule("workspaces:read"))]
WorkspacesManager = Annotated[Caller, Depends(rule("workspaces:manage"))]

WorkspaceId = Annotated[str, Path(alias="workspaceId", description="A workspace_… id")]
