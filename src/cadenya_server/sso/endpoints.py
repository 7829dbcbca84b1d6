"""/v1/account/sso_connections (administrators), and browser sign-in under /auth.

The routes that talk to an identity provider (creating or re-pointing a connection, the
sign-in callback) do so outside any transaction: a slow IdP holds no database turn. They
are async and open their transactions with `runtime.db.run`.
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from cadenya_server.auth import idp_tokens
from cadenya_server.auth import service as auth
from cadenya_server.auth.dependencies import (
    AdminCaller,
    AdminCallerOutsideTransaction,
    Public,
    SessionCookie,
    refuse_foreign_origin,
)
from cadenya_server.kit.clock import rfc3339
from cadenya_server.kit.errors import Unauthenticated
from cadenya_server.kit.http import SESSION_COOKIE
from cadenya_server.kit.params import Page, path_id
from cadenya_server.kit.runtime import AppRuntime, DbSession, Runtime
from cadenya_server.kit.schemas import Empty
from cadenya_server.profiles.schemas import UserProfile
from cadenya_server.sso import oidc, service
from cadenya_server.sso.schemas import (
    ApiKeySignInRequest,
    BrowserSessionInfo,
    CreateSsoConnectionRequest,
    SsoConnection,
    SsoConnectionList,
    UpdateSsoConnectionRequest,
)

router = APIRouter(prefix="/v1/account", tags=["SSO connections"])
browser_router = APIRouter(prefix="/auth", tags=["Sign-in"])

ConnectionId = path_id(service.ID_PREFIX, alias="id")
CALLBACK_PATH = "/auth/sso/callback"
# Binds a sign-in to the browser that started it: a callback URL carried to another
# browser (login CSRF) finds no matching cookie there.
STATE_COOKIE = "cadenya_sso_state"
DEFAULT_RETURN_TO = "/auth/session"
# A path on this server, never another origin (no `//host`, no `/\host`, no scheme).
_RETURN_TO = re.compile(r"^/([\x21-\x2e\x30-\x5b\x5d-\x7e][\x21-\x7e]{0,1998})?$")


def _base_url(runtime: Runtime, request: Request) -> str:
    return runtime.settings.public_url or f"{request.url.scheme}://{request.url.netloc}"


def _callback_url(runtime: Runtime, request: Request) -> str:
    return _base_url(runtime, request) + CALLBACK_PATH


def _secure(runtime: Runtime, request: Request) -> bool:
    """Cookies are Secure except on loopback, where development runs over plain http."""
    host = urlsplit(_base_url(runtime, request)).hostname or ""
    return not oidc.is_loopback(host)


def _set_session_cookie(response: Response, runtime: Runtime, request: Request, token: str) -> None:
    # Host-only (no Domain), the whole site, never readable by scripts.
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=runtime.settings.session_ttl_seconds,
        path="/",
        httponly=True,
        secure=_secure(runtime, request),
        samesite="lax",
    )


def _session_info(session: Session, runtime: Runtime, token: str) -> BrowserSessionInfo:
    profile, caller, expires_at = auth.session_profile(
        session=session, runtime=runtime, token=token
    )
    return BrowserSessionInfo(
        profile=UserProfile.of(profile),
        permissions=sorted(caller.scopes),
        csrf_token=auth.csrf_token(runtime.keyring, token),
        expires_at=rfc3339(expires_at),
    )


# --- Connections -------------------------------------------------------------------------


@router.get("/sso_connections", operation_id="ssoConnections.list")
def list_sso_connections(
    caller: AdminCaller, session: DbSession, runtime: AppRuntime, request: Request, page: Page
) -> SsoConnectionList:
    """Lists the account's SSO connections, oldest first. Administrators only."""
    return service.list_connections(
        session=session, caller=caller, page=page, callback_url=_callback_url(runtime, request)
    )


@router.post("/sso_connections", operation_id="ssoConnections.create")
async def create_sso_connection(
    caller: AdminCallerOutsideTransaction,
    runtime: AppRuntime,
    request: Request,
    body: CreateSsoConnectionRequest,
) -> SsoConnection:
    """Connects the account to an OpenID Provider. Administrators only.

    The issuer's discovery document (`/.well-known/openid-configuration`) is read now; 400
    FAILED_PRECONDITION when it cannot be. `spec.clientSecret` is stored encrypted and never
    shown again. Each of `spec.allowedEmailDomains` belongs to one connection on the server,
    as does an issuer and audience with `acceptBearerTokens` (409 otherwise). Register
    `info.callbackUrl` as the redirect URI at the provider.
    """
    provider = await oidc.discover(service.issuer_to_discover(body=body))

    def create(session: Session) -> SsoConnection:
        return service.create(
            session=session,
            caller=caller,
            keyring=runtime.keyring,
            body=body,
            provider=provider,
            callback_url=_callback_url(runtime, request),
        )

    return await runtime.db.run(create, write=True)


@router.get("/sso_connections/{id}", operation_id="ssoConnections.retrieve")
def get_sso_connection(
    caller: AdminCaller,
    session: DbSession,
    runtime: AppRuntime,
    request: Request,
    connection_id: ConnectionId,
) -> SsoConnection:
    """Gets an SSO connection (its client secret masked). Administrators only."""
    return service.get(
        session=session,
        caller=caller,
        connection_id=connection_id,
        callback_url=_callback_url(runtime, request),
    )


@router.patch("/sso_connections/{id}", operation_id="ssoConnections.update")
async def update_sso_connection(
    caller: AdminCallerOutsideTransaction,
    runtime: AppRuntime,
    request: Request,
    connection_id: ConnectionId,
    body: UpdateSsoConnectionRequest,
) -> SsoConnection:
    """Changes an SSO connection: the fields `updateMask` names, else those in the body
    (`spec.roleMapping.claim`, `spec.roleMapping.adminValues` for the mapping). A new
    issuer's discovery document is read first. Administrators only."""
    issuer = service.issuer_change(body=body)
    provider = await oidc.discover(issuer) if issuer else None

    def update(session: Session) -> SsoConnection:
        return service.update(
            session=session,
            caller=caller,
            keyring=runtime.keyring,
            connection_id=connection_id,
            body=body,
            provider=provider,
            callback_url=_callback_url(runtime, request),
        )

    return await runtime.db.run(update, write=True)


@router.delete("/sso_connections/{id}", operation_id="ssoConnections.delete")
def delete_sso_connection(
    caller: AdminCaller,
    session: DbSession,
    runtime: AppRuntime,
    request: Request,
    connection_id: ConnectionId,
) -> Empty:
    """Removes an SSO connection: no one signs in through it or calls with its tokens any
    more. Administrators only."""
    service.delete(
        session=session,
        caller=caller,
        connection_id=connection_id,
        callback_url=_callback_url(runtime, request),
    )
    return Empty()


# --- Browser sign-in ---------------------------------------------------------------------


@browser_router.get(
    "/sso/start",
    dependencies=[Public],
    operation_id="auth.ssoStart",
    status_code=302,
    response_class=RedirectResponse,
)
async def start_sign_in(
    runtime: AppRuntime,
    request: Request,
    email: Annotated[
        str, Query(max_length=320, description="Its domain picks the connection")
    ] = "",
    connection: Annotated[
        str, Query(max_length=100, description="An SSO connection's id, instead of an email")
    ] = "",
    return_to: Annotated[
        str,
        Query(
            alias="returnTo",
            max_length=2000,
            pattern=_RETURN_TO.pattern,
            description="A path on this server to land on once signed in",
        ),
    ] = DEFAULT_RETURN_TO,
) -> Response:
    """Starts a sign-in: redirects the browser to the identity provider (authorization code
    flow with PKCE S256, `state` and `nonce`)."""
    callback_url = _callback_url(runtime, request)

    def begin(session: Session) -> oidc.AuthorizationRequest:
        return service.begin_sign_in(
            session=session,
            keyring=runtime.keyring,
            email=email,
            connection_id=connection,
            redirect_uri=callback_url,
            return_to=return_to,
        )

    authorization = await runtime.db.run(begin, write=True)
    response = RedirectResponse(authorization.url, status_code=302)
    response.set_cookie(
        STATE_COOKIE,
        authorization.state,
        max_age=int(service.SIGN_IN_TTL.total_seconds()),
        path="/auth/sso",
        httponly=True,
        secure=_secure(runtime, request),
        samesite="lax",
    )
    return response


@browser_router.get(
    CALLBACK_PATH.removeprefix("/auth"),
    dependencies=[Public],
    operation_id="auth.ssoCallback",
    status_code=303,
    response_class=RedirectResponse,
)
async def finish_sign_in(
    runtime: AppRuntime,
    request: Request,
    code: Annotated[str, Query(max_length=4096)] = "",
    state: Annotated[str, Query(max_length=200)] = "",
    error: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """Where the identity provider sends the browser back. Checks `state` (once only, and
    from the browser that started), redeems the code, validates the ID token, signs the
    person in and redirects to `returnTo` with the session cookie set."""
    if error:
        raise Unauthenticated(f"the identity provider refused the sign-in: {error}")
    if not state or request.cookies.get(STATE_COOKIE) != state:
        raise Unauthenticated("this sign-in was not started by this browser: start again")
    pending = await runtime.db.run(
        lambda s: service.take_sign_in(session=s, keyring=runtime.keyring, state=state),
        write=True,
    )
    if not code:
        raise Unauthenticated("the identity provider sent no authorization code")
    id_token = await oidc.exchange_code(
        token_endpoint=pending.token_endpoint,
        client_id=pending.client_id,
        client_secret=pending.client_secret,
        code=code,
        redirect_uri=pending.redirect_uri,
        code_verifier=pending.code_verifier,
    )
    try:
        # In a thread: an unknown key id fetches the IdP's key set.
        claims = await run_in_threadpool(
            idp_tokens.verify,
            id_token,
            issuer=pending.issuer,
            audience=pending.client_id,
            jwks_uri=pending.jwks_uri,
            nonce=pending.nonce,
            leeway_seconds=runtime.settings.jwt_leeway_seconds,
        )
    except idp_tokens.InvalidIdpToken as exc:
        raise Unauthenticated(f"the ID token is not valid: {exc}") from exc
    request_id = getattr(request.state, "request_id", "")

    def complete(session: Session) -> str:
        return service.complete_sign_in(
            session=session,
            keyring=runtime.keyring,
            connection_id=pending.connection_id,
            claims=claims,
            max_profiles=runtime.settings.max_profiles_per_account,
            session_ttl_seconds=runtime.settings.session_ttl_seconds,
            request_id=request_id,
        )

    token = await runtime.db.run(complete, write=True)
    response = RedirectResponse(pending.return_to, status_code=303)
    _set_session_cookie(response, runtime, request, token)
    response.delete_cookie(STATE_COOKIE, path="/auth/sso")
    return response


@browser_router.get("/session", operation_id="auth.session")
def current_session(
    token: SessionCookie, session: DbSession, runtime: AppRuntime
) -> BrowserSessionInfo:
    """Who is signed in with this browser's session cookie, and the CSRF token its changes
    must send in the `X-CSRF-Token` header (with an `Origin` of this server)."""
    return _session_info(session, runtime, token)


@browser_router.post("/api_key", dependencies=[Public], operation_id="auth.apiKeySignIn")
def sign_in_with_api_key(
    session: DbSession,
    runtime: AppRuntime,
    request: Request,
    response: Response,
    body: ApiKeySignInRequest,
) -> BrowserSessionInfo:
    """Signs a browser in with an API key pasted once (the console's other way in): the
    key is exchanged for a session cookie and not kept; the session acts with the key's
    scopes and ends when the key is disabled, rotated or deleted. Only from this server's
    own pages (the `Origin` is checked); 401 for a key that is not valid now."""
    refuse_foreign_origin(request)
    token = auth.start_api_key_session(
        session,
        runtime=runtime,
        api_key=body.api_key,
        ttl_seconds=runtime.settings.session_ttl_seconds,
    )
    _set_session_cookie(response, runtime, request, token)
    return _session_info(session, runtime, token)


@browser_router.post("/logout", operation_id="auth.logout")
def logout(
    token: SessionCookie,
    session: DbSession,
    runtime: AppRuntime,
    request: Request,
    response: Response,
) -> Empty:
    """Ends this browser's session (a cookie-authenticated change: Origin and X-CSRF-Token
    are checked)."""
    auth.end_session(session, keyring=runtime.keyring, token=token)
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        httponly=True,
        secure=_secure(runtime, request),
        samesite="lax",
    )
    return Empty()
