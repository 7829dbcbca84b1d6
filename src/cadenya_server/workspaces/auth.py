"""Who may read and change workspaces and their members."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from cadenya_server.auth.caller import Caller
from cadenya_server.auth.dependencies import rule
from cadenya_server.kit.params import path_id

WorkspacesReader = Annotated[Caller, Depends(rule("workspaces:read"))]
WorkspacesManager = Annotated[Caller, Depends(rule("workspaces:manage"))]

WorkspaceId = path_id("workspace", alias="workspaceId")
