"""Who may read and manage API keys.

Reading needs `api_keys:read`; every change, and :reveal, needs `api_keys:manage`
(and the service checks the caller holds what the key holds).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from cadenya_server.auth.caller import Caller
from cadenya_server.auth.dependencies import rule
from cadenya_server.kit.params import path_id

ApiKeysReader = Annotated[Caller, Depends(rule("api_keys:read"))]
ApiKeysManager = Annotated[Caller, Depends(rule("api_keys:manage"))]

ApiKeyId = path_id("apikey", alias="id")
