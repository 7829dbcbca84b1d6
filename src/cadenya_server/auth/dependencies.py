"""Who may call what, as typed parameters.

Every route declares its caller with one of these aliases. Each is built by
`rule()`, which marks the dependency so a test can walk the application and
find any route that declares none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Annotated

from fastapi import Depends, Header, Request

from cadenya_server.auth import scopes
from cadenya_server.auth.caller import Caller
from cadenya_server.auth.service import authenticate, bearer_token
from cadenya_server.kit.errors import PermissionDenied
from cadenya_server.kit.runtime import AppRuntime, DbSession

AUTH_RULE_ATTRIBUTE = "__auth_rule__"


def authenticated_caller(
    request: Request,
    session: DbSession,
    runtime: AppRuntime,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Caller:
    caller = authenticate(session=session, runtime=runtime, token=bearer_token(authorization))
    return replace(caller, request_id=getattr(request.state, "request_id", ""))


def rule(scope: str | None) -> Callable[..., Caller]:
    """A dependency that lets through callers holding `scope` (None: any caller)."""

    async def dependency(caller: Annotated[Caller, Depends(authenticated_caller)]) -> Caller:
        if scope is not None and not caller.can(scope):
            raise PermissionDenied(f"this call needs the {scope!r} permission")
        return caller

    setattr(dependency, AUTH_RULE_ATTRIBUTE, scope or "authenticated")
    dependency.__name__ = f"requires_{(scope or 'authentication').replace(':', '_')}"
    return dependency


def public() -> None:
    """Marks a route as public on purpose."""


setattr(public, AUTH_RULE_ATTRIBUTE, "public")

AnyCaller = Annotated[Caller, Depends(rule(None))]
AdminCaller = Annotated[Caller, Depends(rule(scopes.ACCOUNT_MANAGE))]
Public = Depends(public)
