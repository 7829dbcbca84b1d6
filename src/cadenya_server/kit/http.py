"""Everything between the socket and the handlers: error mapping, body limits,
request ids, access logs and metrics."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cadenya_server.kit.db import busy, responding
from cadenya_server.kit.errors import (
    ApiError,
    FieldViolation,
    Internal,
    InvalidArgument,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Unavailable,
)
from cadenya_server.kit.metrics import LATENCY, REQUESTS

# The browser session's cookie (set at sign-in, read by auth; the rate limits count
# its requests as a bearer token's).
SESSION_COOKIE = "cadenya_session"

log = structlog.get_logger("cadenya_server.http")

# The Content-Security-Policy of every response (the console's pages and the API's JSON
# alike): scripts, styles and connections from this origin only, no inline script or
# style, no plugins, never framed. A route that needs another policy (Swagger UI's /docs,
# whose page configures itself inline) sets its own header, which is then kept.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
)

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


# An API served beside /v1 with an error format of its own (SCIM's, on /scim/v2).
ErrorShape = Callable[[ApiError], JSONResponse]


def error_response(error: ApiError, scope: Scope | None = None) -> JSONResponse:
    """The error in the shape of the API the request's path belongs to: the google.rpc
    Status, unless `install_error_handlers` registered another shape for a prefix of it."""
    if scope is not None and "app" in scope:
        shapes: Mapping[str, ErrorShape] = getattr(scope["app"].state, "error_shapes", {})
        for prefix, shape in shapes.items():
            if scope["path"] == prefix or scope["path"].startswith(prefix + "/"):
                return shape(error)
    return JSONResponse(error.body(), status_code=error.http_status, headers=error.headers)


def _field_name(location: tuple[Any, ...]) -> str:
    parts = [str(p) for p in location]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def _validation_error(exc: RequestValidationError, path: str) -> ApiError:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return InvalidArgument("the request body is not valid JSON")
    if any(tuple(e.get("loc", ()))[:1] == ("path",) for e in errors):
        # A path parameter is an id; one of the wrong shape names nothing that exists.
        return NotFound(f"{path} not found")
    violations = [
        FieldViolation(field=_field_name(tuple(e.get("loc", ()))), description=_message(e))
        for e in errors
    ]
    first = violations[0] if violations else FieldViolation("body", "invalid request")
    return InvalidArgument(f"invalid {first.field}: {first.description}", violations=violations)


def _message(error: Mapping[str, Any]) -> str:
    message = str(error.get("msg", ""))
    # Our validators' own words, without pydantic's preamble.
    return message.removeprefix("Value error, ")


def _methods_at(request: Request, *, empty_parameters: bool = False) -> set[str]:
    """The methods the routes serve at this path (Starlette's 405 names only the first
    route's); with `empty_parameters`, also where a path parameter would be empty."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.router.routes):
        if route.path and route.methods:
            pattern = compile_path(route.path)[0].pattern
            if empty_parameters:
                pattern = pattern.replace("[^/]+", "[^/]*")
            if re.fullmatch(pattern, request.url.path):
                methods |= route.methods
    return methods


def _api_error_behind(exc: HTTPException) -> ApiError | None:
    """Our error, if FastAPI wrapped one it caught while reading the body (the size limit).

    A streamed body is read through the observability middleware's task group, so
    the error arrives inside an ExceptionGroup.
    """
    cause = exc.__cause__
    while isinstance(cause, BaseExceptionGroup) and len(cause.exceptions) == 1:
        cause = cause.exceptions[0]
    return cause if isinstance(cause, ApiError) else None


def install_error_handlers(app: FastAPI, shapes: Mapping[str, ErrorShape] | None = None) -> None:
    """Every error leaves as a google.rpc Status, or under a path prefix of `shapes` in that
    API's own shape; nothing else ever does."""
    app.state.error_shapes = dict(shapes or {})

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc, request.scope)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(_validation_error(exc, request.url.path), request.scope)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        wrapped = _api_error_behind(exc)
        if wrapped is not None:
            return error_response(wrapped, request.scope)
        if exc.status_code == 404:
            return error_response(
                NotFound(f"no route for {request.method} {request.url.path}"), request.scope
            )
        if exc.status_code == 405:
            if request.method in _methods_at(request, empty_parameters=True):
                # `/api_keys/:rotate`: the route exists, but an empty id names nothing.
                return error_response(NotFound(f"{request.url.path} not found"), request.scope)
            error = MethodNotAllowed(f"{request.method} is not supported on {request.url.path}")
            error.headers["Allow"] = ", ".join(sorted(_methods_at(request)))
            return error_response(error, request.scope)
        if exc.status_code == 400:
            return error_response(
                InvalidArgument("the request body could not be read"), request.scope
            )
        return error_response(Internal("internal error"), request.scope)

    @app.exception_handler(OperationalError)
    async def _database_down(request: Request, exc: OperationalError) -> JSONResponse:
        log.error("database unavailable", error=str(exc.orig))
        return error_response(
            Unavailable("the database is unavailable; try again shortly"), request.scope
        )

    @app.exception_handler(PoolTimeout)
    async def _no_connection(request: Request, _exc: PoolTimeout) -> JSONResponse:
        log.warning("no database connection free in time")
        return error_response(busy(), request.scope)

    @app.exception_handler(DBAPIError)
    async def _database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        if exc.connection_invalidated:
            return error_response(
                Unavailable("the database is unavailable; try again shortly"), request.scope
            )
        log.exception("database error")
        return error_response(Internal("internal error"), request.scope)

    @app.exception_handler(Exception)
    async def _bug(request: Request, _exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return error_response(Internal("internal error"), request.scope)


class BodyLimit:
    """Refuses request bodies over `max_bytes`, declared or streamed."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = PayloadTooLarge(f"the request body exceeds {self.max_bytes} bytes")
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await error_response(too_large, scope)(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise too_large
            return message

        await self.app(scope, limited, send)


class Observability:
    """A request id and the security headers (SECURITY_HEADERS) on every response, one
    access-log line and metrics per request; then `after_request`, for what the app
    records of its own state.

    Plain ASGI rather than Starlette's BaseHTTPMiddleware: no extra task per
    request, and errors reach the handlers unwrapped.
    """

    def __init__(self, app: ASGIApp, *, after_request: Callable[[], None]) -> None:
        self.app = app
        self.after_request = after_request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        # What `request.state.request_id` reads in the handlers.
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["X-Request-Id"] = request_id
                for name, value in SECURITY_HEADERS:
                    if name not in headers:
                        headers[name] = value
            await send(message)

        started = time.perf_counter()
        try:
            with structlog.contextvars.bound_contextvars(request_id=request_id), responding():
                await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            template = getattr(scope.get("route"), "path", "unmatched")
            REQUESTS.labels(scope["method"], template, str(status)).inc()
            LATENCY.labels(scope["method"], template).observe(elapsed)
            self.after_request()
            log.info(
                "request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                ms=round(elapsed * 1000, 2),
                request_id=request_id,
            )
