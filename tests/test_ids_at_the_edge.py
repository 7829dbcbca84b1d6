"""Ids and text are checked at the edge, the same on both databases.

The walk covers the application as built, as test_authorization does: every id in
every route's path, query and body is tried with NUL bytes, over-long values, the
wrong prefix and non-ULIDs (404 in a path, 400 naming the field elsewhere), and every
text field of every body with control characters (400 naming the field). A route
added tomorrow is walked too, and one whose id is not typed fails the walk. The
server's own log must show no traceback and no error for any of it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from hypothesis import find
from hypothesis import strategies as st

from cadenya_server.app import create_app
from cadenya_server.kit.ids import new_id
from cadenya_server.models import SsoConnection
from conftest import (
    NO_RATE_LIMITS,
    Server,
    Tenant,
    free_port,
    jwt_for,
    make_account,
    make_profile,
    start_server,
    stop_server,
)

ID_PATTERN = re.compile(r"^\^\(?([a-z]+)_\[0-9A-HJKMNP-TV-Z\]\{26\}\)?\??\$$")
BODY_METHODS = {"POST", "PATCH", "PUT"}
# Names of this API's ids: `id`, `workspaceId`, `profileId`, … (an externalId is the
# caller's own, an SSO connection's clientId the identity provider's).
ID_NAME = re.compile(r"^(id|(?!external|client).*Id)$")


def bad_ids(prefix: str) -> list[str]:
    good = new_id(prefix)
    other = "account" if prefix != "account" else "profile"
    return [
        "\x00",
        good[:-1] + "\x00",
        good + "\x00",
        "a\x00b",
        good + "0" * 300,
        "x" * 2000,
        good.replace(prefix, other, 1),
        good.replace(prefix, prefix.upper(), 1),
        f"{prefix}_" + "I" * 26,
        good.lower(),
        good[:-1],
        f"{prefix}_",
        "0" * 26,
        "a.b",
        "%",
        "é",
    ]


CONTROL = ["a\x00b", "\x00", "a\x07b", "a\x1bb", "a\x85b"]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    spec: dict[str, Any]


@pytest.fixture(scope="module")
def document(server: Server) -> dict[str, Any]:
    return create_app(server.runtime).openapi()


@pytest.fixture(scope="module")
def operations(server: Server, document: dict[str, Any]) -> list[Operation]:
    """Every API route and method of the application, with its part of the document."""
    found = []
    for route in iter_route_contexts(create_app(server.runtime).routes):
        if not (route.path or "").startswith("/v1/"):
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            spec = document["paths"].get(route.path, {}).get(method.lower())
            assert spec is not None, f"{method} {route.path} is missing from the document"
            found.append(Operation(method, route.path, spec))
    assert len(found) > 30
    return found


@pytest.fixture(scope="module")
def logged(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A server of its own whose log the test reads; yields (base URL, log path)."""
    log = tmp_path_factory.mktemp("edge") / "server.log"
    port = free_port()
    with log.open("wb") as sink:
        env = {**server.env, **NO_RATE_LIMITS, "CADENYA_SERVER_LOG_LEVEL": "INFO"}
        process = start_server(env, port, log=sink)
        yield f"http://127.0.0.1:{port}", log
        stop_server(process)


@pytest.fixture(scope="module")
def tenant(server: Server) -> Tenant:
    return make_account(server, name="Edges", domain="edges.io")


@pytest.fixture(scope="module")
def http(server: Server, tenant: Tenant, logged: Any) -> Iterator[httpx.Client]:
    # An administrator's JWT: no API key of the account is at stake.
    token = jwt_for(server, tenant.admin_profile_id, tenant.id, ttl=3600)
    base_url, _ = logged
    with httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        yield client


@pytest.fixture(scope="module")
def real_ids(server: Server, tenant: Tenant, http: httpx.Client) -> dict[str, str]:
    """An existing resource of the tenant for each kind of id, so that a refusal that
    came too late would reach the database."""
    key = http.post("/v1/account/api_keys", json={"metadata": {"name": "edge"}}).json()
    endpoint = http.post(
        "/v1/account/trusted_endpoints",
        json={"metadata": {"name": "edge"}, "spec": {"host": "edge.example"}},
    ).json()
    hook = http.post(
        "/v1/account/webhook_endpoints",
        json={"metadata": {"name": "edge"}, "spec": {"url": "https://edge.example/hook"}},
    ).json()
    message = http.post("/v1/account/webhook_messages", json={"type": "edge.x", "data": {}})
    deliveries = http.get(f"/v1/account/webhook_endpoints/{hook['metadata']['id']}/deliveries")
    with server.runtime.db.transaction() as session:
        # Added directly: creating one through the API reads a live discovery document.
        connection = SsoConnection(
            id=new_id("ssoconn"),
            account_id=tenant.id,
            issuer="https://idp.edge.example",
            client_id="edge",
            authorization_endpoint="https://idp.edge.example/authorize",
            token_endpoint="https://idp.edge.example/token",
            jwks_uri="https://idp.edge.example/jwks",
        )
        session.add(connection)
    return {
        "ssoconn": connection.id,
        "whep": hook["metadata"]["id"],
        "msg": message.json()["id"],
        "whdel": deliveries.json()["items"][0]["metadata"]["id"],
        "workspace": tenant.workspace_id,
        "apikey": key["metadata"]["id"],
        "endpoint": endpoint["metadata"]["id"],
        "profile": make_profile(server, tenant.id, name="Pat", email="pat@edges.io"),
    }


# Reading the document


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    for union in ("anyOf", "oneOf"):
        options = [s for s in schema.get(union, []) if s.get("type") != "null"]
        if options and "type" not in schema and "properties" not in schema:
            return resolve(document, options[0])
    return schema


def id_prefix(schema: dict[str, Any]) -> str | None:
    match = ID_PATTERN.match(schema.get("pattern", ""))
    return match.group(1) if match else None


def parameters(operation: Operation, where: str) -> list[dict[str, Any]]:
    return [p for p in operation.spec.get("parameters", []) if p["in"] == where]


def body_schema(document: dict[str, Any], operation: Operation) -> dict[str, Any] | None:
    content = operation.spec.get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema")
    return resolve(document, schema) if schema else None


def example(document: dict[str, Any], schema: dict[str, Any]) -> Any:
    """The smallest value the document allows: required fields only."""
    schema = resolve(document, schema)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        required = set(schema.get("required", []))
        for option in schema.get("oneOf", [])[:1]:
            required |= set(option.get("required", []))
        return {
            name: example(document, sub)
            for name, sub in schema.get("properties", {}).items()
            if name in required
        }
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "string":
        if "pattern" in schema:
            return matching(schema["pattern"])
        return "x" * max(schema.get("minLength", 0), 1)
    return {"integer": 0, "boolean": False, "array": []}.get(kind)


@functools.cache
def matching(pattern: str) -> str:
    """The simplest text a pattern matches (hypothesis shrinks to it)."""
    return find(st.from_regex(pattern, fullmatch=True), lambda _: True)


def fields(
    document: dict[str, Any], schema: dict[str, Any], path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], dict[str, Any]]]:
    """(path, schema) of every string field in a body, array items and label maps included."""
    schema = resolve(document, schema)
    if schema.get("type") == "string":
        yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from fields(document, sub, (*path, name))
    if schema.get("type") == "array":
        yield from fields(document, schema["items"], (*path, 0))
    if isinstance(schema.get("additionalProperties"), dict):
        yield (*path, "{key}"), {"type": "string"}
        yield from fields(document, schema["additionalProperties"], (*path, "k"))


def with_value(
    document: dict[str, Any], schema: dict[str, Any], path: tuple[str | int, ...], value: str
) -> Any:
    """The smallest body, with `value` at `path` (and whatever leads there)."""
    if not path:
        return value
    schema = resolve(document, schema)
    step, rest = path[0], path[1:]
    if step == "{key}":
        return {value: "v"}
    if isinstance(step, int):
        return [with_value(document, schema["items"], rest, value)]
    body = example(document, schema)
    sub = schema.get("properties", {}).get(step) or schema.get("additionalProperties")
    body[step] = with_value(document, sub, rest, value)
    if step in {p for o in schema.get("oneOf", []) for p in o.get("required", [])}:
        # "Exactly one of": the chosen field stands alone.
        for option in schema["oneOf"]:
            for other in option.get("required", []):
                if other != step:
                    body.pop(other, None)
    return body


def field_name(path: tuple[str | int, ...]) -> str:
    return ".".join(str(p) for p in path if p not in ("{key}", "k"))


def fill(path: str, ids: dict[str, str]) -> str:
    return re.sub(r"\{[^}]+\}", lambda m: ids[m.group(0)], path)


def path_ids(operation: Operation, real_ids: dict[str, str]) -> dict[str, str]:
    """`{name}` -> an existing id of the right kind, for each path parameter."""
    found = {}
    for parameter in parameters(operation, "path"):
        prefix = id_prefix(parameter["schema"])
        assert prefix, f"{operation.path}: {parameter['name']} is not a typed id"
        found["{" + parameter["name"] + "}"] = real_ids[prefix]
    return found


def assert_refused(response: httpx.Response, status: int, code: int, where: str) -> dict:
    assert response.status_code == status, (where, response.status_code, response.text)
    body = response.json()
    assert body["code"] == code, (where, body)
    return body


def violations(body: dict) -> list[str]:
    return [v["field"] for d in body["details"] for v in d.get("fieldViolations", [])]


# The walk


def test_every_path_parameter_is_a_typed_id(operations: list[Operation]) -> None:
    with_ids = [o for o in operations if parameters(o, "path")]
    assert len(with_ids) > 15
    for operation in with_ids:
        for parameter in parameters(operation, "path"):
            assert id_prefix(parameter["schema"]), (operation.path, parameter)
            assert parameter["schema"]["minLength"] > 0


def test_malformed_path_ids_are_404(
    operations: list[Operation], http: httpx.Client, real_ids: dict[str, str]
) -> None:
    tried = 0
    for operation in operations:
        ids = path_ids(operation, real_ids)
        for placeholder in ids:
            prefix = id_prefix(
                next(
                    p["schema"]
                    for p in parameters(operation, "path")
                    if "{" + p["name"] + "}" == placeholder
                )
            )
            assert prefix
            for bad in bad_ids(prefix):
                url = fill(operation.path, {**ids, placeholder: _quote(bad)})
                body = {} if operation.method in BODY_METHODS else None
                response = http.request(operation.method, url, json=body)
                assert_refused(response, 404, 5, f"{operation.method} {url!r}")
                tried += 1
    assert tried > 200


def _quote(value: str) -> str:
    return quote(value, safe="")


def test_malformed_query_ids_are_400_naming_the_parameter(
    operations: list[Operation], http: httpx.Client, real_ids: dict[str, str]
) -> None:
    tried = 0
    for operation in operations:
        for parameter in parameters(operation, "query"):
            prefix = id_prefix(parameter["schema"])
            if ID_NAME.match(parameter["name"]):
                assert prefix, (operation.path, parameter["name"], "is not a typed id")
            if not prefix:
                continue
            url = fill(operation.path, path_ids(operation, real_ids))
            for bad in bad_ids(prefix):
                response = http.request(operation.method, url, params={parameter["name"]: bad})
                body = assert_refused(response, 400, 3, f"{operation.method} {url} {bad!r}")
                assert violations(body) == [parameter["name"]]
                tried += 1
    assert tried >= len(bad_ids("workspace"))


def test_malformed_body_ids_are_400_naming_the_field(
    operations: list[Operation],
    document: dict[str, Any],
    http: httpx.Client,
    real_ids: dict[str, str],
) -> None:
    tried = set()
    for operation in operations:
        schema = body_schema(document, operation)
        if schema is None:
            continue
        url = fill(operation.path, path_ids(operation, real_ids))
        for path, field in fields(document, schema):
            name = str(path[-1])
            prefix = id_prefix(field)
            if ID_NAME.match(name):
                assert prefix, (operation.method, operation.path, path, "is not a typed id")
            if not prefix:
                continue
            for bad in bad_ids(prefix):
                body = with_value(document, schema, path, bad)
                response = http.request(operation.method, url, json=body)
                refused = assert_refused(response, 400, 3, f"{operation.method} {url} {body!r}")
                assert field_name(path) in violations(refused), (body, refused)
            tried.add((operation.method, operation.path, field_name(path)))
    assert {
        ("POST", "/v1/account/workspaces/{workspaceId}/members", "profileId"),
        ("POST", "/v1/account/api_keys/{id}:addWorkspace", "workspaceId"),
        ("POST", "/v1/account/api_keys", "spec.workspaceAssignments.0.workspaceId"),
    } <= tried


def test_control_characters_in_body_text_are_400_naming_the_field(
    operations: list[Operation],
    document: dict[str, Any],
    http: httpx.Client,
    real_ids: dict[str, str],
) -> None:
    tried = 0
    for operation in operations:
        schema = body_schema(document, operation)
        if schema is None:
            continue
        url = fill(operation.path, path_ids(operation, real_ids))
        # The smallest body is accepted as it stands or refused for what the state
        # forbids, never for its shape: so each refusal below is the text's.
        plain = http.request(operation.method, url, json=example(document, schema))
        assert plain.status_code != 400 or plain.json()["code"] != 3, (url, plain.text)
        for path, _ in fields(document, schema):
            for bad in CONTROL:
                body = with_value(document, schema, path, bad)
                response = http.request(operation.method, url, json=body)
                refused = assert_refused(response, 400, 3, f"{operation.method} {url} {body!r}")
                named = field_name(path)
                # A list's items are named by the list, a label by its key.
                assert any(
                    v.startswith(named) or named.startswith(v) for v in violations(refused)
                ), (body, refused)
                tried += 1
    assert tried > 100


def test_control_characters_in_query_text_are_never_a_server_error(
    operations: list[Operation], http: httpx.Client, real_ids: dict[str, str]
) -> None:
    for operation in operations:
        url = fill(operation.path, path_ids(operation, real_ids))
        for parameter in parameters(operation, "query"):
            for bad in CONTROL:
                response = http.request(operation.method, url, params={parameter["name"]: bad})
                assert response.status_code in (200, 400), (url, parameter["name"], bad)


def test_the_log_holds_no_traceback(logged: Any, http: httpx.Client) -> None:
    # Runs last in this module: everything above went through this server.
    _, log = logged
    assert http.get("/v1/account").status_code == 200
    text = Path(log).read_text()
    assert text.count('"event": "request"') > 500
    for sign in ("Traceback", '"level": "error"', " ERROR ", '"exception"'):
        assert sign not in text, sign
