"""The public half of the JWT signing key."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from cadenya_server.auth.dependencies import Public
from cadenya_server.kit.runtime import AppRuntime

router = APIRouter(tags=["Authentication"])


@router.get("/.well-known/jwks.json", dependencies=[Public], operation_id="auth.jwks")
def jwks(runtime: AppRuntime) -> dict[str, Any]:
    """The key set that verifies the JWTs this server issues."""
    return runtime.jwt.jwks()
