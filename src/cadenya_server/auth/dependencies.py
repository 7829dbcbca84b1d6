"""Who may call what, as typed parameters.

Every route declares its caller with one of these aliases. Each is built by
`rule()` or `credentials()`, which mark the dependency so a test can walk the
application and find any route that declares none.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Annotated, TypeVar

from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session

from cadenya_server.auth import scopes
from cadenya_server.auth.caller import Caller
from cadenya_server.auth.service import authenticate, bearer_token
from cadenya_server.kit.errors import PermissionDenied
from cadenya_server.kit.runtime import AppRuntime, DbSession, Runtime

AUTH_RULE_ATTRIBUTE = "__auth_rule__"
T = TypeVar("T")


@dataclass(frozen=True)
class Credentials:
    """What a request presents, checked against a route's rule by `caller`."""

    token: str
    request_id: str
    # The permission the route needs (None: any caller).
    scope: str | None

    def caller(self, *, session: Session, runtime: Runtime) -> Caller:
        """The caller, or Unauthenticated; PermissionDenied unless it holds the scope."""
        caller = authenticate(session=session, runtime=runtime, token=self.token)
        if self.scope is not None and not caller.can(self.scope):
            raise PermissionDenied(f"this call needs the {self.scope!r} permission")
        return replace(caller, request_id=self.request_id)


def credentials(scope: str | None) -> Callable[..., Credentials]:
    """A dependency that hands a route its request's credentials, to check in its own thread.

    For a hot path: `rule()` resolves the caller in a trip to the thread pool of its
    own, and the request's session in two more (see profiles.endpoints).
    """

    async def dependency(
        request: Request,
        authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
    ) -> Credentials:
        # A missing or malformed header is refused here, before the route's parameters
        # are checked, as the routes that resolve their caller in a dependency refuse it.
        return Credentials(
            token=bearer_token(authorization),
            request_id=getattr(request.state, "request_id", ""),
            scope=scope,
        )

    return _marked(dependency, scope)


def rule(scope: str | None) -> Callable[..., Caller]:
    """A dependency that lets through callers holding `scope` (None: any caller)."""

    # A default, not an annotation: annotations are strings here, which FastAPI resolves
    # in the module's globals, where `scope` is not.
    presented_by_request = Depends(credentials(scope))

    def dependency(
        session: DbSession, runtime: AppRuntime, presented: Credentials = presented_by_request
    ) -> Caller:
        return presented.caller(session=session, runtime=runtime)

    return _marked(dependency, scope)


def _marked(dependency: Callable[..., T], scope: str | None) -> Callable[..., T]:
    """Marked, so a test can walk the application and find any route that declares no rule."""
    setattr(dependency, AUTH_RULE_ATTRIBUTE, scope or "authenticated")
    dependency.__name__ = f"requires_{(scope or 'authentication').replace(':', '_')}"
    return dependency


def public() -> None:
    """Marks a route as public on purpose."""


setattr(public, AUTH_RULE_ATTRIBUTE, "public")

AnyCaller = Annotated[Caller, Depends(rule(None))]
AdminCaller = Annotated[Caller, Depends(rule(scopes.ACCOUNT_MANAGE))]
AnyCredentials = Annotated[Credentials, Depends(credentials(None))]
AdminCredentials = Annotated[Credentials, Depends(credentials(scopes.ACCOUNT_MANAGE))]
Public = Depends(public)
