"""Every route declares who may call it, and the manage rules refuse everyone else.

The walk covers the application as built, so a route added tomorrow without a
caller dependency fails here, and so does one whose `:manage` rule lets a
member or a read-only key through.
"""

from __future__ import annotations

import re

import pytest
from fastapi import Depends, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import RouteContext, iter_route_contexts
from starlette.routing import BaseRoute, Mount

from cadenya_server.app import create_app
from cadenya_server.auth.dependencies import AUTH_RULE_ATTRIBUTE, AnyCaller, Public
from conftest import Server, Tenant, jwt_for, make_api_key, make_profile

# Static files are served without a dependency tree to carry a rule; each is public on purpose.
STATIC_MOUNTS = {"/docs/assets"}
PUBLIC = "public"
READ_ONLY_SCOPES = ["workspaces:read", "api_keys:read"]


def rules_of(route: RouteContext) -> set[str]:
    """The auth rules anywhere in a route's dependency tree (router-level ones included)."""
    rules: set[str] = set()
    root: Dependant | None = getattr(route, "dependant", None)
    pending = [root] if root is not None else []
    while pending:
        dependant = pending.pop()
        rule = getattr(dependant.call, AUTH_RULE_ATTRIBUTE, None)
        if rule is not None:
            rules.add(rule)
        pending.extend(dependant.dependencies)
    return rules


def unguarded(routes: list[BaseRoute]) -> list[str]:
    """Routes that declare no caller, nor that they are public."""
    missing = []
    for route in iter_route_contexts(routes):
        if isinstance(route.original_route, Mount) and route.path in STATIC_MOUNTS:
            continue
        if not rules_of(route):
            missing.append(route.path or repr(route.original_route))
    return missing


def is_manage(rule: str) -> bool:
    return rule.endswith(":manage")


def calls(routes: list[BaseRoute], keep: object) -> list[tuple[str, str]]:
    """(method, path with placeholder ids) for each API route whose rules satisfy `keep`."""
    found = []
    for route in iter_route_contexts(routes):
        rules = rules_of(route)
        if rules and keep(rules):  # type: ignore[operator]
            path = re.sub(r"\{[^}]+\}", "placeholder_0", route.path or "")
            found += [(method, path) for method in sorted((route.methods or set()) - {"HEAD"})]
    return found


@pytest.fixture(scope="module")
def routes(server: Server) -> list[BaseRoute]:
    return create_app(server.runtime).routes


def test_the_walk_notices_a_route_without_a_caller() -> None:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/guarded")
    def guarded(_caller: AnyCaller) -> None: ...

    @app.get("/public", dependencies=[Public])
    def public() -> None: ...

    @app.get("/forgotten")
    def forgotten(_value: int = Depends(lambda: 1)) -> None: ...

    assert unguarded(app.routes) == ["/forgotten"]


def test_every_route_declares_its_caller(routes: list[BaseRoute]) -> None:
    assert unguarded(routes) == []
    mounts = {r.path for r in routes if isinstance(r, Mount)}
    assert mounts == STATIC_MOUNTS


def test_manage_routes_refuse_members_and_read_only_keys(
    server: Server, account: Tenant, routes: list[BaseRoute]
) -> None:
    manage = calls(routes, lambda rules: any(is_manage(r) for r in rules))
    # The walk sees the routes this server is known to guard, so it is not vacuous.
    assert {
        ("POST", "/v1/account/workspaces"),
        ("DELETE", "/v1/account/workspaces/placeholder_0/members/placeholder_0"),
        ("POST", "/v1/account:rotateWebhookSigningKey"),
        ("GET", "/v1/account/audit_events"),
        ("PATCH", "/v1/account/profiles/placeholder_0"),
    } <= set(manage)
    member = make_profile(server, account.id, name="Mia Member", email="mia@acme.io")
    tokens = {
        "member": jwt_for(server, member, account.id),
        "read-only key": make_api_key(server, account, permissions=READ_ONLY_SCOPES),
    }
    for who, token in tokens.items():
        with server.http(token) as http:
            for method, path in manage:
                body = {} if method in ("POST", "PUT", "PATCH") else None
                response = http.request(method, path, json=body)
                assert response.status_code == 403, (who, method, path, response.text)
                # SCIM answers in its own error format (RFC 7644 §3.12).
                if path.startswith("/scim/v2/"):
                    assert response.json()["status"] == "403", (who, method, path)
                else:
                    assert response.json()["code"] == 7, (who, method, path)


def test_every_guarded_route_needs_a_token(server: Server, routes: list[BaseRoute]) -> None:
    guarded = calls(routes, lambda rules: PUBLIC not in rules)
    assert len(guarded) > 10
    with server.http() as http:
        for method, path in guarded:
            response = http.request(method, path, json={} if method != "GET" else None)
            body = response.json()
            # SCIM answers in its own error format (RFC 7644 §3.12).
            code = body["status"] if path.startswith("/scim/v2/") else body["code"]
            assert (response.status_code, code) in ((401, 16), (401, "401")), (method, path)
