"""Who may read and manage API keys.

Reading needs `api_keys:read`; every change, and :reveal, needs `api_keys:manage`
(and the service checks the caller holds what the key holds).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path

from cadenya_server.auth.caller import Caller
from cadenya_server.auth.dependencies import rule

ApiKeysReader = Annotated[Caller, Depends(rule("api_keys:read"))]
ApiKeysManager = Annotated[Caller, Depends(rule("api_keys:manage"))]

ApiKeyId = Annotated[str, Path(alias="id", description="An apikey_… id")]
