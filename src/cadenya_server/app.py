"""The ASGI application."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic.json_schema import models_json_schema
from sqlalchemy import text

from cadenya_server import __version__
from cadenya_server.accounts.endpoints import router as accounts_router
from cadenya_server.api_keys.endpoints import router as api_keys_router
from cadenya_server.audit.endpoints import router as audit_router
from cadenya_server.auth.dependencies import Public
from cadenya_server.auth.endpoints import router as auth_router
from cadenya_server.config import get_settings
from cadenya_server.console.endpoints import router as console_router
from cadenya_server.kit import logging as kit_logging
from cadenya_server.kit import metrics
from cadenya_server.kit import migrate as migrations
from cadenya_server.kit.errors import Unavailable
from cadenya_server.kit.http import (
    CONTENT_SECURITY_POLICY,
    SESSION_COOKIE,
    BodyLimit,
    Observability,
    error_response,
    install_error_handlers,
)
from cadenya_server.kit.rate_limits import RateLimit, RateLimits
from cadenya_server.kit.runtime import AppRuntime, Runtime
from cadenya_server.members.endpoints import router as members_router
from cadenya_server.profiles.endpoints import router as profiles_router
from cadenya_server.profiles.search import bitmaps
from cadenya_server.scim import schemas as scim_schemas
from cadenya_server.scim.endpoints import router as scim_router
from cadenya_server.sso.endpoints import browser_router as sign_in_router
from cadenya_server.sso.endpoints import router as sso_router
from cadenya_server.trusted_endpoints.endpoints import router as trusted_endpoints_router
from cadenya_server.webhooks import events
from cadenya_server.webhooks import metrics as webhook_metrics
from cadenya_server.webhooks.endpoints import router as webhooks_router
from cadenya_server.webhooks.worker import BackgroundWorker, Worker
from cadenya_server.workspaces.endpoints import router as workspaces_router

# Swagger UI 5 (it reads OpenAPI 3.1), as the fastapi-swagger package ships it.
SWAGGER_ASSETS = resources.files("fastapi_swagger") / "resources"

STATUS_SCHEMA = {
    "type": "object",
    "description": "A google.rpc.Status, as gRPC gateways emit it.",
    "required": ["code", "message", "details"],
    "properties": {
        "code": {"type": "integer", "description": "google.rpc.Code"},
        "message": {"type": "string"},
        "details": {"type": "array", "items": {"type": "object"}},
    },
}


def create_app(runtime: Runtime | None = None) -> FastAPI:
    """The application; it builds its runtime from the environment unless given one."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.runtime = current = runtime or Runtime.from_settings(get_settings())
        metrics.observe_pool(current.db.engine)
        worker = None
        if current.settings.webhooks.run_worker:
            worker = BackgroundWorker(
                Worker(db=current.db, keyring=current.keyring, settings=current.settings.webhooks)
            )
            worker.start()
        compactor = bitmaps.Compactor(current.db)
        compactor.start()
        yield
        compactor.stop()
        if worker is not None:
            worker.stop()
        current.db.dispose()
        metrics.worker_stopped()

    # In a worker of `serve`, whose logging uvicorn set up from the command's log_config.
    kit_logging.route_structlog()

    app = FastAPI(
        title="Cadenya Account API",
        version=__version__,
        description="A self-hosted server for the account plane of the Cadenya API.",
        lifespan=lifespan,
        # A trailing slash is a path of its own: 404, not a redirect whose Location
        # would echo the request's Host header.
        redirect_slashes=False,
        docs_url=None,
        redoc_url=None,
        # Served by _install_docs, as a route that declares itself public.
        openapi_url=None,
    )
    if runtime is not None:
        app.state.runtime = runtime
    install_error_handlers(app, shapes={scim_schemas.PREFIX: scim_schemas.error_response})
    for router in (
        accounts_router,
        profiles_router,
        auth_router,
        workspaces_router,
        members_router,
        audit_router,
        api_keys_router,
        trusted_endpoints_router,
        webhooks_router,
        scim_router,
        sso_router,
        sign_in_router,
        console_router,
    ):
        app.include_router(router)
    _install_operations(app)
    _install_docs(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    settings = runtime.settings if runtime else get_settings()
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    # Outside the body limit: a refused caller's body is never read.
    app.add_middleware(RateLimit, limits=RateLimits(settings))
    # Added last, so outermost: it sees (and logs) what the body limit refuses too.
    app.add_middleware(
        Observability, after_request=lambda: metrics.observe_pool(app.state.runtime.db.engine)
    )
    return app


def _install_operations(app: FastAPI) -> None:
    @app.get("/livez", dependencies=[Public], include_in_schema=False)
    async def livez() -> Response:
        """The process answers; nothing else is asked (a restart would not mend the database)."""
        return JSONResponse({"status": "ok"})

    @app.get("/healthz", dependencies=[Public], include_in_schema=False)
    def healthz(runtime: AppRuntime) -> Response:
        try:
            with runtime.db.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception:
            return error_response(Unavailable("the database is unavailable"))
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", dependencies=[Public], include_in_schema=False)
    def readyz(runtime: AppRuntime) -> Response:
        """Ready for traffic: the database answers and its schema is the one this build needs."""
        try:
            schema = migrations.schema_state(runtime.db.engine)
        except Exception:
            return error_response(Unavailable("the database is unavailable"))
        if schema is not migrations.SchemaState.CURRENT:
            return error_response(Unavailable(f"the database schema is {schema.value}"))
        return JSONResponse({"status": "ok"})

    @app.get("/metrics", dependencies=[Public], include_in_schema=False)
    def metrics_exposition(runtime: AppRuntime) -> Response:
        metrics.observe_pool(runtime.db.engine)
        webhook_metrics.observe_pending(runtime.db)
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)


def _install_docs(app: FastAPI) -> None:
    """Swagger UI from files shipped in the package: the page loads nothing from the internet."""
    app.mount("/docs/assets", StaticFiles(directory=SWAGGER_ASSETS), name="docs-assets")

    @app.get("/openapi.json", dependencies=[Public], include_in_schema=False)
    def openapi_document() -> JSONResponse:
        return JSONResponse(app.openapi())

    page = get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="Cadenya Account API",
        swagger_js_url="/docs/assets/swagger-ui-bundle.js",
        swagger_css_url="/docs/assets/swagger-ui.css",
        swagger_favicon_url="/docs/assets/favicon-32x32.png",
    ).body
    # The page configures Swagger UI in an inline script: its policy allows that one script
    # by its hash, and inline styles, which Swagger UI sets as it renders.
    inline = [
        "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode() + "'"
        for script in re.findall(rb"<script>(.*?)</script>", page, re.DOTALL)
    ]
    policy = CONTENT_SECURITY_POLICY.replace(
        "script-src 'self'", "script-src 'self' " + " ".join(inline)
    ).replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")

    @app.get("/docs", dependencies=[Public], include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(page, headers={"Content-Security-Policy": policy})


WEBHOOK_HEADERS = {
    "webhook-id": "The message id (msg_…): the same for every attempt and endpoint",
    "webhook-timestamp": "The attempt's Unix seconds",
    "webhook-signature": "`v1,<base64>` HMAC-SHA256 per signing secret, the newest first, "
    "space-separated during a rotation's grace window",
}


def _webhooks(components: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI 3.1 `webhooks`: each event type the server sends, with its body's schema."""
    described = events.data_schemas()
    _, definitions = models_json_schema(
        [(model, "serialization") for model, _ in described.values()],
        ref_template="#/components/schemas/{model}",
    )
    for name, definition in definitions.get("$defs", {}).items():
        components.setdefault(name, definition)
    hooks: dict[str, Any] = {}
    for event_type, (model, description) in described.items():
        body = {
            "type": "object",
            "required": ["type", "timestamp", "data"],
            "properties": {
                "type": {"const": event_type} if "{" not in event_type else {"type": "string"},
                "timestamp": {"type": "string", "format": "date-time"},
                "data": {"$ref": f"#/components/schemas/{model.__name__}"},
            },
        }
        hooks[event_type] = {
            "post": {
                "summary": event_type,
                "description": description,
                "operationId": f"webhook.{event_type}",
                "parameters": [
                    {
                        "name": name,
                        "in": "header",
                        "required": True,
                        "description": text,
                        "schema": {"type": "string"},
                    }
                    for name, text in WEBHOOK_HEADERS.items()
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": body}},
                },
                "responses": {
                    "2XX": {"description": "Received; any other answer is retried"},
                    "410": {"description": "Gone: the endpoint is disabled"},
                },
            }
        }
    return hooks


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The generated document, with our error shape instead of FastAPI's 422."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
    schema.setdefault("components", {}).setdefault("schemas", {})["Status"] = STATUS_SCHEMA
    schema["components"]["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key issued by this server (cdy_…), a JWT it signed, or an "
            "access token of the account's identity provider (an SSO connection with "
            "acceptBearerTokens) for a person who signed in through it.",
        },
        "session": {
            "type": "apiKey",
            "in": "cookie",
            "name": SESSION_COOKIE,
            "description": "A browser's session, started by GET /auth/sso/callback. A change "
            "made with it must come from this server's Origin and send the session's "
            "csrfToken (GET /auth/session) in the X-CSRF-Token header.",
        },
    }
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            responses["default"] = {
                "description": "An error",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Status"}}
                },
            }
            if path.startswith("/v1/"):
                operation["security"] = [{"bearer": []}, {"session": []}]
            elif path in ("/auth/session", "/auth/logout"):
                operation["security"] = [{"session": []}]
    for name in ("HTTPValidationError", "ValidationError"):
        schema["components"]["schemas"].pop(name, None)
    schema["webhooks"] = _webhooks(schema["components"]["schemas"])
    app.openapi_schema = schema
    return schema
