"""The OpenAPI document and the Swagger UI page, as a client or a browser sees them."""

from __future__ import annotations

import os
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from playwright.sync_api import sync_playwright

from conftest import Server, repo_root
from helpers import METADATA_FIELDS

CAMEL_CASE = re.compile(r"[a-z][a-zA-Z0-9]*")
# Debian's: Playwright cannot download its own browsers here (.ci/run installs it).
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = repo_root() / "test-artifacts"
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
        assert operation["security"] == [{"bearer": []}, {"session": []}]
    assert openapi["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert openapi["components"]["securitySchemes"]["session"]["in"] == "cookie"


def test_the_document_describes_sign_in(openapi: dict[str, Any]) -> None:
    paths = openapi["paths"]
    for path, method in (
        ("/v1/account/sso_connections", "post"),
        ("/v1/account/sso_connections/{id}", "patch"),
        ("/auth/sso/start", "get"),
        ("/auth/sso/callback", "get"),
        ("/auth/session", "get"),
        ("/auth/logout", "post"),
        ("/auth/api_key", "post"),
    ):
        assert paths[path][method]["operationId"], (path, method)
    assert paths["/auth/session"]["get"]["security"] == [{"session": []}]
    assert "security" not in paths["/auth/sso/start"]["get"]
    assert "security" not in paths["/auth/api_key"]["post"]
    assert {"sso_connection.created", "profile.created"} <= set(openapi["webhooks"])


def test_responses_have_camel_case_fields_all_required(openapi: dict[str, Any]) -> None:
    account = response_schema(openapi, "/v1/account", "get")
    assert set(account["required"]) == {"metadata", "spec", "info"}
    metadata = property_schema(openapi, account, "metadata")
    assert set(metadata["required"]) == METADATA_FIELDS
    spec = property_schema(openapi, account, "spec")
    assert set(spec["required"]) == {"billingEmail", "description", "domain", "workspaces"}
    info = property_schema(openapi, account, "info")
    assert set(info["required"]) == {
        "webhookEventsHmacSecret",
        "challengeToken",
        "previousSecretExpiresAt",
    }

    profiles = response_schema(openapi, "/v1/account/profiles", "get")
    assert set(profiles["required"]) == {"items", "pagination"}
    pagination = property_schema(openapi, profiles, "pagination")
    assert set(pagination["required"]) == {"nextCursor", "total"}
    profile = property_schema(openapi, profiles, "items")
    # `info` is ours beside the seed's two: whether SCIM deactivated the person.
    assert set(profile["required"]) == {"metadata", "spec", "info"}
    assert set(property_schema(openapi, profile, "spec")["required"]) == {"type", "email", "name"}
    assert set(property_schema(openapi, profile, "info")["required"]) == {"deactivated"}

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


def test_the_webhooks_section_lists_every_event_type_and_its_data(
    openapi: dict[str, Any],
) -> None:
    from cadenya_server import outbox

    webhooks = openapi["webhooks"]
    assert set(webhooks) == {*outbox.EVENT_TYPES.values(), outbox.TEST_EVENT, "{published}"}
    for event_type, hook in webhooks.items():
        body = hook["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body["required"] == ["type", "timestamp", "data"]
        data = resolve(openapi, body["properties"]["data"])
        assert data["type"] == "object", event_type
        headers = {p["name"] for p in hook["post"]["parameters"]}
        assert headers == {"webhook-id", "webhook-timestamp", "webhook-signature"}
    profile = resolve(
        openapi,
        webhooks["profile.created"]["post"]["requestBody"]["content"]["application/json"]["schema"][
            "properties"
        ]["data"],
    )
    assert set(profile["required"]) == {"metadata", "spec", "info"}


def test_the_docs_page_shows_every_operation_in_a_browser(
    server: Server, openapi: dict[str, Any]
) -> None:
    if not CHROMIUM.exists():
        message = f"no browser at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    documented = {
        (method.upper(), path) for path, ops in openapi["paths"].items() for method in ops
    } | {
        # OpenAPI 3.1 webhooks, which Swagger UI 5 lists as operations too.
        (method.upper(), name)
        for name, ops in openapi["webhooks"].items()
        for method in ops
    }
    fetched: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda request: fetched.append(request.url))
            page.goto(f"{server.base_url}/docs")
            page.wait_for_selector(".opblock .opblock-summary-path", timeout=30_000)
            shown = page.evaluate(
                """() => [...document.querySelectorAll('.opblock')].map(block => [
                    block.querySelector('.opblock-summary-method').textContent,
                    block.querySelector('.opblock-summary-path').dataset.path,
                ])"""
            )
            errors = page.locator(".errors-wrapper").all_inner_texts()
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=ARTIFACTS / "docs.png", full_page=True)
        finally:
            browser.close()
    assert not errors, errors
    assert {(method, path) for method, path in shown} == documented
    origin = urlsplit(server.base_url).netloc
    assert fetched and all(
        urlsplit(url).netloc == origin for url in fetched if not url.startswith("data:")
    ), fetched
