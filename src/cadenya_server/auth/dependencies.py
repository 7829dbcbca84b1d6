"""Who may call what, as typed parameters.

Every route declares its caller with one of these aliases. Each is built by
`rule()` or `credentials()`, which mark the dependency so a test can walk the
application and find any route that declares none.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Annotated, TypeVar

from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session

from cadenya_server.auth import scopes
from cadenya_server.auth.caller import Caller
from cadenya_server.auth.service import (
    authenticate,
    bearer_token,
    csrf_token,
    session_caller,
)
from cadenya_server.kit.errors import PermissionDenied, Unauthenticated
from cadenya_server.kit.http import SESSION_COOKIE
from cadenya_server.kit.runtime import AppRuntime, DbSession, Runtime

AUTH_RULE_ATTRIBUTE = "__auth_rule__"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
T = TypeVar("T")


@dataclass(frozen=True)
class Credentials:
    """What a request presents, checked against a route's rule by `caller`."""

    token: str
    request_id: str
    # The permission the route needs (None: any caller).
    scope: str | None
    # A browser's session cookie, when it sent no Authorization header.
    session_token: str = ""

    def caller(self, *, session: Session, runtime: Runtime) -> Caller:
        """The caller, or Unauthenticated; PermissionDenied unless it holds the scope."""
        if self.session_token:
            caller = session_caller(session=session, runtime=runtime, token=self.session_token)
        else:
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
        request_id = getattr(request.state, "request_id", "")
        cookie = request.cookies.get(SESSION_COOKIE)
        if authorization is None and cookie:
            refuse_cross_site(request, cookie)
            return Credentials(token="", request_id=request_id, scope=scope, session_token=cookie)
        # A missing or malformed header is refused here, before the route's parameters
        # are checked, as the routes that resolve their caller in a dependency refuse it.
        return Credentials(token=bearer_token(authorization), request_id=request_id, scope=scope)

    return _marked(dependency, scope)


def origin_of(request: Request) -> str:
    """This server's origin as the browser sees it: the configured public URL's, else the
    request's own."""
    runtime: Runtime = request.app.state.runtime
    if runtime.settings.public_url:
        scheme, _, rest = runtime.settings.public_url.partition("://")
        return f"{scheme}://{rest.split('/', 1)[0]}"
    return f"{request.url.scheme}://{request.url.netloc}"


def refuse_foreign_origin(request: Request) -> None:
    """A browser's request must come from this server's own pages (its Origin header)."""
    if request.headers.get("origin") != origin_of(request):
        raise PermissionDenied("cross-site request refused: the Origin is not this server")


def refuse_cross_site(request: Request, session_token: str) -> None:
    """A change made with the session cookie must come from this server's own pages: the
    browser's Origin header names this server, and the request echoes the session's CSRF
    token in a header (which another site can neither read nor set)."""
    if request.method in SAFE_METHODS:
        return
    runtime: Runtime = request.app.state.runtime
    refuse_foreign_origin(request)
    sent = request.headers.get(CSRF_HEADER, "")
    if not secrets.compare_digest(
        sent.encode(), csrf_token(runtime.keyring, session_token).encode()
    ):
        raise PermissionDenied(
            f"cross-site request refused: send the {CSRF_HEADER} header GET /auth/session gives"
        )


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


def rule_outside_transaction(scope: str | None) -> Callable[..., Caller]:
    """`rule()` for a route that calls out (to an identity provider) before it writes: the
    caller is authenticated in a read transaction of its own, so the request holds none
    while it waits, and before the server fetches anything on the caller's behalf."""
    presented_by_request = Depends(credentials(scope))

    async def dependency(
        runtime: AppRuntime, presented: Credentials = presented_by_request
    ) -> Caller:
        return await runtime.db.run(
            lambda session: presented.caller(session=session, runtime=runtime), write=False
        )

    return _marked(dependency, scope)


def _marked(dependency: Callable[..., T], scope: str | None) -> Callable[..., T]:
    """Marked, so a test can walk the application and find any route that declares no rule."""
    setattr(dependency, AUTH_RULE_ATTRIBUTE, scope or "authenticated")
    dependency.__name__ = f"requires_{(scope or 'authentication').replace(':', '_')}"
    return dependency


async def _session_cookie(request: Request) -> str:
    """The session cookie of a browser's request, its changes checked for cross-site origin."""
    cookie = request.cookies.get(SESSION_COOKIE, "")
    if not cookie:
        raise Unauthenticated("not signed in: no session cookie")
    refuse_cross_site(request, cookie)
    return cookie


def public() -> None:
    """Marks a route as public on purpose."""


setattr(public, AUTH_RULE_ATTRIBUTE, "public")

AnyCaller = Annotated[Caller, Depends(rule(None))]
AdminCaller = Annotated[Caller, Depends(rule(scopes.ACCOUNT_MANAGE))]
AdminCallerOutsideTransaction = Annotated[
    Caller, Depends(rule_outside_transaction(scopes.ACCOUNT_MANAGE))
]
AnyCredentials = Annotated[Credentials, Depends(credentials(None))]
AdminCredentials = Annotated[Credentials, Depends(credentials(scopes.ACCOUNT_MANAGE))]
Public = Depends(public)
# A signed-in browser's session token (from its cookie), for the /auth/session routes.
SessionCookie = Annotated[str, Depends(_marked(_session_cookie, None))]
