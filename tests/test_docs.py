"""The OpenAPI document and the Swagger UI page, as a client or a browser sees them."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest

from conftest import Server
from helpers import METADATA_FIELDS

CAMEL_CASE = re.compile(r"[a-z][a-zA-Z0-9]*")
OPERATIONS = {
    ("/v1/account", "get"),
    ("/v1/account/rotate_webhook_signing_key", "post"),
    ("/v1/account:rotateWebhookSigningKey", "post"),
    ("/v1/account:rotateChallengeToken", "post"),
    ("/v1/account/profiles", "get"),
    ("/v1/whoami", "get"),
}


@pytest.fixture(scope="module")
def openapi(server: Server) -> dict[str, Any]:
    with server.http() as http:
        response = http.get("/openapi.json")
    assert response.status_code == 200
    return response.json()


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        schema = document["components"]["schemas"][name]
    return schema


def response_schema(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    content = document["paths"][path][method]["responses"]["200"]["content"]
    return resolve(document, content["application/json"]["schema"])


def property_schema(document: dict[str, Any], schema: dict[str, Any], name: str) -> dict[str, Any]:
    prop = schema["properties"][name]
    if prop.get("type") == "array":
        prop = prop["items"]
    return resolve(document, prop)


def test_the_document_describes_the_calls(openapi: dict[str, Any]) -> None:
    described = {(p, m) for p, ops in openapi["paths"].items() for m in ops}
    assert described >= OPERATIONS
    for path, method in OPERATIONS:
        operation = openapi["paths"][path][method]
        assert operation["operationId"] and operation["summary"]
        assert operation["security"] == [{"bearer": []}]
    assert openapi["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_responses_have_camel_case_fields_all_required(openapi: dict[str, Any]) -> None:
    account = response_schema(openapi, "/v1/account", "get")
    assert set(account["required"]) == {"metadata", "spec", "info"}
    metadata = property_schema(openapi, account, "metadata")
    assert set(metadata["required"]) == METADATA_FIELDS
    spec = property_schema(openapi, account, "spec")
    assert set(spec["required"]) == {"billingEmail", "description", "domain", "workspaces"}
    info = property_schema(openapi, account, "info")
    assert set(info["required"]) == {"webhookEventsHmacSecret", "challengeToken"}

    profiles = response_schema(openapi, "/v1/account/profiles", "get")
    assert set(profiles["required"]) == {"items", "pagination"}
    pagination = property_schema(openapi, profiles, "pagination")
    assert set(pagination["required"]) == {"nextCursor", "total"}
    profile = property_schema(openapi, profiles, "items")
    assert set(profile["required"]) == {"metadata", "spec"}
    assert set(property_schema(openapi, profile, "spec")["required"]) == {"type", "email", "name"}

    whoami = response_schema(openapi, "/v1/whoami", "get")
    assert set(whoami["required"]) == {"profile", "defaultWorkspace"}

    for name, schema in openapi["components"]["schemas"].items():
        for field in schema.get("properties", {}):
            assert CAMEL_CASE.fullmatch(field), f"{name}.{field}"
    # The server always sends every field, so every response field is required.
    for name in response_schema_names(openapi):
        schema = openapi["components"]["schemas"][name]
        assert set(schema.get("required", [])) == set(schema.get("properties", {})), name


def response_schema_names(document: dict[str, Any]) -> set[str]:
    """Every named schema a 200 response uses, directly or nested."""
    pending = [
        str(operation["responses"]["200"])
        for operations in document["paths"].values()
        for operation in operations.values()
        if "200" in operation["responses"]
    ]
    names: set[str] = set()
    while pending:
        for name in re.findall(r"#/components/schemas/([\w.-]+)", pending.pop()):
            if name not in names:
                names.add(name)
                pending.append(str(document["components"]["schemas"][name]))
    return names


def test_the_query_parameters_are_documented(openapi: dict[str, Any]) -> None:
    parameters = openapi["paths"]["/v1/account/profiles"]["get"]["parameters"]
    assert {p["name"] for p in parameters} >= {"query", "cursor", "limit", "type", "labels"}
    assert all(p["in"] == "query" for p in parameters)
    assert not any(p["name"].lower() == "authorization" for p in parameters)


def test_errors_are_the_status_shape_and_never_422(openapi: dict[str, Any]) -> None:
    status = openapi["components"]["schemas"]["Status"]
    assert set(status["required"]) == {"code", "message", "details"}
    assert status["properties"]["code"]["type"] == "integer"
    assert status["properties"]["details"]["type"] == "array"
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "422" not in responses, (path, method)
            error = responses["default"]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/Status"}
    assert "HTTPValidationError" not in openapi["components"]["schemas"]
    assert "ValidationError" not in openapi["components"]["schemas"]


class _Assets(HTMLParser):
    """The URLs a browser would fetch for a page: scripts, stylesheets, icons, images."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href", "img": "src", "iframe": "src"}.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.urls.append(value)


def test_the_docs_page_loads_only_same_origin_assets(server: Server) -> None:
    with server.http() as http:
        page = http.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        parser = _Assets()
        parser.feed(page.text)
        assert any(u.endswith(".js") for u in parser.urls)
        assert any(u.endswith(".css") for u in parser.urls)
        origin = urlsplit(server.base_url).netloc
        for url in parser.urls:
            absolute = urljoin(f"{server.base_url}/docs", url)
            assert urlsplit(absolute).netloc == origin, url
            asset = http.get(absolute)
            assert asset.status_code == 200, url
            assert asset.content, url
        # Nor anywhere else in the page, e.g. the inline script's configuration.
        for url in re.findall(r"https?://[^\s'\"<>]+", page.text):
            assert urlsplit(url).netloc == origin, url

        spec_url = re.search(r"url:\s*'([^']+)'", page.text)
        assert spec_url is not None
        assert http.get(urljoin(f"{server.base_url}/docs", spec_url.group(1))).status_code == 200
