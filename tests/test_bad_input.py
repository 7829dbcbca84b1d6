"""Bad input through a live server: every refusal is a google.rpc Status with the
right code, never a 500, and never a leak of internals."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from conftest import Server, Tenant, make_account

MIB = 1024 * 1024
ROTATE = "/v1/account:rotateChallengeToken"
SEARCH = "/v1/account/profiles"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
LEAKS = ("Traceback", "sqlalchemy", "SELECT", 'File "')


@pytest.fixture(scope="module")
def tenant(server: Server) -> Tenant:
    return make_account(server, name="Inputs", domain="inputs.io")


@pytest.fixture
def http(server: Server, tenant: Tenant) -> Iterator[httpx.Client]:
    with server.http(tenant.api_key) as client:
        yield client


def assert_status(response: httpx.Response, http_status: int, code: int) -> dict:
    """The response is this error, in exactly the google.rpc Status shape, leaking nothing."""
    assert response.status_code == http_status, response.text
    assert response.headers["content-type"].startswith("application/json")
    for leak in LEAKS:
        assert leak not in response.text
    body = response.json()
    assert set(body) == {"code", "message", "details"}
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["details"], list)
    return body


def assert_field_violation(body: dict, field: str) -> None:
    (detail,) = body["details"]
    assert detail["@type"] == BAD_REQUEST
    fields = [v["field"] for v in detail["fieldViolations"]]
    assert fields and all(f.startswith(field) for f in fields), fields
    assert all(v["description"] for v in detail["fieldViolations"])


# Body size


def test_a_body_over_the_limit_with_content_length_is_413(http: httpx.Client) -> None:
    body = b"{}" + b" " * MIB
    response = http.post(ROTATE, content=body, headers={"Content-Type": "application/json"})
    assert_status(response, 413, 3)


def test_a_chunked_body_over_the_limit_is_413(http: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"{}"
        for _ in range(17):
            yield b" " * 65536

    response = http.post(ROTATE, content=chunks(), headers={"Content-Type": "application/json"})
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in response.request.headers
    assert_status(response, 413, 3)


def test_a_body_at_the_limit_is_accepted(http: httpx.Client) -> None:
    body = b"{}" + b" " * (MIB - 2)
    response = http.post(ROTATE, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert response.json()["challengeToken"]


# Bodies


def test_invalid_json_is_400(http: httpx.Client) -> None:
    for text in ("{", '{"a":', "not json", "{'single': 'quotes'}", "\xff\xfe"):
        response = http.post(
            ROTATE, content=text.encode("latin-1"), headers={"Content-Type": "application/json"}
        )
        assert_status(response, 400, 3)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("[]", "body"),
        ('"x"', "body"),
        ("1", "body"),
        ("true", "body"),
        ('{"unknown":1}', "unknown"),
    ],
)
def test_json_of_the_wrong_shape_is_400(http: httpx.Client, body: str, field: str) -> None:
    response = http.post(ROTATE, content=body, headers={"Content-Type": "application/json"})
    assert_field_violation(assert_status(response, 400, 3), field)


def test_an_empty_object_or_no_body_is_accepted(http: httpx.Client) -> None:
    assert http.post(ROTATE, json={}).status_code == 200
    assert http.post(ROTATE).status_code == 200


def test_deeply_nested_json_is_400_not_500(http: httpx.Client) -> None:
    response = http.post(
        ROTATE, content=b"[" * 200_000, headers={"Content-Type": "application/json"}
    )
    assert_status(response, 400, 3)


# Query parameters of the profile search


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "-1"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"limit": "1e3"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"type": "BOGUS"}, "type"),
        ({"type": "profile_type_user"}, "type"),
        ({"labels": "a"}, "labels"),
        ({"labels": "=x"}, "labels"),
        ({"labels": "k=v v"}, "labels"),
        ({"labels": "k" * 300 + "=v"}, "labels"),
        ({"labels": "k=" + "v" * 64}, "labels"),
        ({"labels": "team=core,,env=prod"}, "labels"),
        ({"labels": "k=\x00"}, "labels"),
        ({"query": "q" * 201}, "query"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "e30.AAAA"}, "cursor"),
        ({"cursor": "\x00"}, "cursor"),
    ],
)
def test_bad_search_parameters_are_400_with_a_field_violation(
    http: httpx.Client, params: dict[str, str], field: str
) -> None:
    body = assert_status(http.get(SEARCH, params=params), 400, 3)
    assert_field_violation(body, field)


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "99999999999999999999"},
        {"limit": "-99999999999999999999"},
        {"limit": "1" * 5000},
        {"query": "\x00"},
        {"query": "%_\\'\";--"},
        {"query": "q" * 200},
        {"labels": "k=v"},
    ],
)
def test_odd_but_harmless_search_parameters_never_500(
    http: httpx.Client, params: dict[str, str]
) -> None:
    response = http.get(SEARCH, params=params)
    if response.status_code == 200:
        assert set(response.json()) == {"items", "pagination"}
    else:
        assert_status(response, 400, 3)


def test_a_limit_above_the_maximum_is_lowered(http: httpx.Client) -> None:
    response = http.get(SEARCH, params={"limit": "99999999999999999999"})
    assert response.status_code == 200, response.text
    assert response.json()["pagination"]["total"] >= len(response.json()["items"]) >= 1


# Routes and methods


@pytest.mark.parametrize(
    "path", ["/nope", "/v1/nope", "/v1/account/nope", "/v2/account", "/v1/account%00", "/a" * 2000]
)
def test_an_unknown_route_is_404(http: httpx.Client, server: Server, path: str) -> None:
    assert_status(http.get(path), 404, 5)
    with server.http() as anonymous:
        assert_status(anonymous.get(path), 404, 5)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/v1/account"),
        ("PUT", "/v1/account"),
        ("POST", "/v1/whoami"),
        ("GET", ROTATE),
        ("PATCH", SEARCH),
        ("POST", "/.well-known/jwks.json"),
    ],
)
def test_a_wrong_method_is_405(http: httpx.Client, method: str, path: str) -> None:
    response = http.request(method, path)
    assert_status(response, 405, 12)
    assert response.headers["allow"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/v1/account/workspaces", "GET, POST"),
        ("PUT", "/v1/account/workspaces/{workspace}", "DELETE, GET, PATCH"),
        ("PUT", "/v1/account/api_keys", "GET, POST"),
        ("GET", "/v1/account/trusted_endpoints:verify", "POST"),
        ("PUT", "/v1/account/workspaces/{workspace}/members", "GET, POST"),
    ],
)
def test_allow_names_every_method_the_path_serves(
    http: httpx.Client, tenant: Tenant, method: str, path: str, allowed: str
) -> None:
    response = http.request(method, path.format(workspace=tenant.workspace_id))
    assert_status(response, 405, 12)
    assert response.headers["allow"] == allowed


def test_an_empty_id_before_a_verb_is_404(http: httpx.Client) -> None:
    # The route is `{id}:rotate`; with no id at all there is nothing to rotate.
    for path in ("/v1/account/api_keys/:rotate", "/v1/account/api_keys/:disable"):
        assert_status(http.post(path, json={}), 404, 5)


@pytest.mark.parametrize(
    "path",
    ["/v1/account/", "/v1/account/workspaces/", "/v1/whoami/", "/healthz/", "/openapi.json/"],
)
def test_a_trailing_slash_is_404_and_never_a_redirect(server: Server, path: str) -> None:
    # No credentials: a redirect would be answered before authentication, to anyone.
    with httpx.Client(base_url=server.base_url, follow_redirects=False) as anyone:
        response = anyone.get(path, headers={"Host": "evil.example"})
    assert_status(response, 404, 5)
    assert "location" not in response.headers


def test_every_response_carries_a_request_id(server: Server, account: Tenant) -> None:
    http = server.http(account.api_key)
    echoed = http.get("/v1/account", headers={"X-Request-Id": "trace-42"})
    assert echoed.headers["X-Request-Id"] == "trace-42"
    made_up = http.get("/v1/account", headers={"X-Request-Id": "not a sane id\\"})
    assert re.fullmatch(r"[0-9a-f]{32}", made_up.headers["X-Request-Id"])
    refused = server.http().get("/v1/account")
    assert refused.status_code == 401 and refused.headers["X-Request-Id"]
