"""The admin console in a real browser (Debian's Chromium through Playwright) against the
suite's live server: sign-in through the real OpenID Provider and with an API key, the
member picker, workspaces and members, keys, the signing secret, webhook deliveries, the
member's view; on every page axe-core finds no serious or critical violation, every
console response carries the Content-Security-Policy, and no request leaves the server's
origin. Screenshots of each page go to test-artifacts/console/.

One browser for the module and the suite's own server: the module costs the browser's
start and its pages, no server of its own.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, Response, Route, expect, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from cadenya_server.kit.http import CONTENT_SECURITY_POLICY
from conftest import Server, Tenant, make_account, make_profile
from oidc_providers import random_sub, set_person
from test_docs import ARTIFACTS, CHROMIUM
from test_sso import connect
from webhook_receiver import Receiver

SHOTS = ARTIFACTS / "console"
ADMIN_PAGES = {
    "/": "Account",
    "/profiles": "Profiles",
    "/workspaces": "Workspaces",
    "/api_keys": "API keys",
    "/webhooks": "Webhooks",
    "/sso": "SSO and SCIM",
    "/audit": "Audit log",
}
ADMIN_GROUP = "console-admins"
# Names the picker must find for `zo` (name or email), and one it must not.
ZO_PEOPLE = ("Zoë Quinn", "Zoltan Kodály", "Ozzy Zorro", "Amara Nozomi")
# Labels of the buttons only an administrator is shown.
ADMIN_ACTIONS = (
    "Rotate secret…",
    "Reveal secret",
    "Create workspace",
    "Rename",
    "Archive…",
    "Remove",
    "Create key",
    "Make administrator",
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = f"no browser at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Console:
    """A page of a fresh browser context, with the traffic it made."""

    page: Page
    base_url: str
    # (url, the URL of the document that made it, whether it is a navigation)
    requests: list[tuple[str, str, bool]] = field(default_factory=list)
    responses: list[Response] = field(default_factory=list)

    def goto(self, path: str) -> None:
        self.page.goto(f"{self.base_url}/console{path}")
        self.page.wait_for_load_state("networkidle")

    def check_traffic(self) -> None:
        """No request of the console's pages left the server's origin (a sign-in navigates
        to the identity provider, whose own page loads what it likes); every console
        response carried the policy."""
        origin = urlsplit(self.base_url).netloc
        foreign = [
            url
            for url, document, navigation in self.requests
            if not url.startswith("data:")
            and urlsplit(url).netloc != origin
            and urlsplit(document).netloc in (origin, "")
            and not navigation
        ]
        assert not foreign, foreign
        console = [r for r in self.responses if urlsplit(r.url).path.startswith("/console")]
        assert console
        for response in console:
            assert response.headers.get("content-security-policy") == CONTENT_SECURITY_POLICY, (
                response.url
            )
            assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY


@pytest.fixture
def console(browser: Browser, server: Server) -> Iterator[Console]:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.base_url)
    page = context.new_page()
    found = Console(page, server.base_url)
    page.on(
        "request",
        lambda request: found.requests.append(
            (request.url, request.frame.url, request.is_navigation_request())
        ),
    )
    page.on("response", lambda response: found.responses.append(response))
    try:
        yield found
    finally:
        context.close()


@dataclass(frozen=True)
class ConsoleAccount:
    tenant: Tenant
    domain: str
    people: dict[str, str]
    workspace_id: str


@pytest.fixture(scope="module")
def tenant(server: Server, idp: str) -> ConsoleAccount:
    """An account connected to the real provider, with people for the picker to find."""
    domain = f"c{secrets.token_hex(4)}.example"
    tenant = make_account(server, name="Console Co", domain=domain)
    people = {}
    for index, name in enumerate(ZO_PEOPLE):
        people[name] = make_profile(
            server, tenant.id, name=name, email=f"person{index}@{domain}", labels={"team": "zo"}
        )
    people["Ada Lovelace"] = make_profile(
        server, tenant.id, name="Ada Lovelace", email=f"ada@{domain}"
    )
    connect(
        server,
        tenant,
        idp,
        domain,
        roleMapping={"claim": "groups", "adminValues": [ADMIN_GROUP]},
        createProfiles=True,
    )
    with server.http(tenant.api_key) as http:
        workspace = http.post("/v1/account/workspaces", json={"metadata": {"name": "Picked"}})
        assert workspace.status_code == 200, workspace.text
    return ConsoleAccount(tenant, domain, people, workspace.json()["metadata"]["id"])


def sign_in_with_key(console: Console, api_key: str) -> None:
    console.goto("/")
    console.page.get_by_label("API key").fill(api_key)
    console.page.get_by_role("button", name="Sign in with the key").click()
    expect(console.page.get_by_role("heading", name="Account", exact=True)).to_be_visible()


def sign_in_with_sso(console: Console, idp: str, email: str, groups: list[str]) -> None:
    sub = random_sub()
    set_person(idp, sub, email=email, email_verified=True, name=email.split("@")[0], groups=groups)
    console.goto("/")
    console.page.get_by_label("Work email").fill(email)
    console.page.get_by_role("button", name="Continue with SSO").click()
    # The provider's own login form, on its own origin (the only other origin visited).
    console.page.fill('input[name="sub"]', sub)
    console.page.click("button:has-text('Authorize')")
    console.page.wait_for_url(f"{console.base_url}/console")
    expect(console.page.get_by_role("heading", name="Account", exact=True)).to_be_visible()


def check_accessibility(page: Page, name: str) -> None:
    """axe-core on the page as it stands: no serious or critical violation."""
    results = Axe().run(page)
    serious = [
        (violation["id"], [node["target"] for node in violation["nodes"]])
        for violation in results.response["violations"]
        if violation["impact"] in ("serious", "critical")
    ]
    assert not serious, (name, serious)
    assert results.response["passes"], name


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / f"{name}.png", full_page=True)


def api_total(server: Server, tenant: Tenant, **params: str) -> int:
    with server.http(tenant.api_key) as http:
        response = http.get("/v1/account/profiles", params=params)
    assert response.status_code == 200, response.text
    return response.json()["pagination"]["total"]


# --- Sign-in and every page --------------------------------------------------------------


def test_every_page_with_an_api_key_accessible_under_the_policy(
    console: Console, server: Server, tenant: ConsoleAccount
) -> None:
    sign_in_with_key(console, tenant.tenant.api_key)
    # The key is exchanged for a session: nothing of it stays in the browser's storage.
    stored = console.page.evaluate("JSON.stringify(localStorage) + JSON.stringify(sessionStorage)")
    assert tenant.tenant.api_key not in stored
    assert tenant.tenant.api_key not in console.page.evaluate("document.cookie")
    nav = console.page.get_by_role("navigation", name="Console")
    for path, title in ADMIN_PAGES.items():
        # Through the navigation, as a person would (the app's own routing).
        nav.get_by_role("link", name=title, exact=True).click()
        expect(console.page.get_by_role("heading", level=1, name=title)).to_be_visible()
        console.page.wait_for_load_state("networkidle")
        assert console.page.url == f"{server.base_url}/console{'' if path == '/' else path}"
        shot(console.page, f"admin{path.replace('/', '-') if path != '/' else '-account'}")
        check_accessibility(console.page, path)
    # A page loaded directly (the server answers every console route with the page).
    console.goto(f"/profiles/{tenant.people['Ada Lovelace']}")
    expect(console.page.get_by_role("heading", name="Ada Lovelace")).to_be_visible()
    shot(console.page, "admin-profile")
    check_accessibility(console.page, "profile")
    console.goto(f"/workspaces/{tenant.workspace_id}")
    expect(console.page.get_by_role("heading", name="Picked")).to_be_visible()
    shot(console.page, "admin-workspace")
    check_accessibility(console.page, "workspace")
    # 320 px wide and in dark mode: still no serious violation (contrast included).
    console.page.set_viewport_size({"width": 320, "height": 800})
    console.page.emulate_media(color_scheme="dark")
    for path in ADMIN_PAGES:
        console.goto(path)
        name = path.strip("/") or "account"
        shot(console.page, f"admin-{name}-320-dark")
        check_accessibility(console.page, f"{path} at 320 px, dark")
        # Nothing wider than the screen: no sideways scrolling of the page.
        width = console.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 320, (path, width)
    console.check_traffic()


def test_sign_in_through_the_identity_provider_and_out(
    console: Console, idp: str, tenant: ConsoleAccount
) -> None:
    sign_in_with_sso(console, idp, f"grace@{tenant.domain}", [ADMIN_GROUP])
    page = console.page
    expect(page.get_by_text("(administrator)")).to_be_visible()
    shot(page, "signed-in-through-sso")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in with the key")).to_be_visible()
    check_accessibility(page, "sign-in")
    shot(page, "sign-in")
    # Signed out at the server too: the session is gone.
    assert page.evaluate("fetch('/auth/session').then(r => r.status)") == 401
    console.check_traffic()


def test_a_wrong_api_key_is_refused_with_the_servers_message(console: Console) -> None:
    console.goto("/")
    console.page.get_by_label("API key").fill("cdy_" + "x" * 46)
    console.page.get_by_role("button", name="Sign in with the key").click()
    expect(console.page.get_by_role("alert")).to_contain_text("API key")


# --- The member picker -------------------------------------------------------------------


def test_typing_zo_shows_the_matches_highlighted_and_the_exact_total(
    console: Console, server: Server, tenant: ConsoleAccount
) -> None:
    sign_in_with_key(console, tenant.tenant.api_key)
    console.goto("/profiles")
    page = console.page
    box = page.get_by_role("combobox", name="Search profiles")
    box.press_sequentially("zo", delay=30)
    total = api_total(server, tenant.tenant, query="zo")
    assert total >= len(ZO_PEOPLE)
    expect(page.locator(".count").first).to_have_text(f"{total} matches")
    listbox = page.get_by_role("listbox")
    expect(listbox).to_have_attribute("data-query", "zo")
    names = listbox.get_by_role("option").all_inner_texts()
    for name in ZO_PEOPLE:
        assert any(name in text for text in names), (name, names)
    assert not any("Ada Lovelace" in text for text in names)
    marks = {m.lower() for m in listbox.locator("mark").all_inner_texts()}
    assert marks == {"zo"}, marks
    # The active option follows the arrows (aria-activedescendant).
    box.press("ArrowDown")
    active = box.get_attribute("aria-activedescendant")
    assert active and page.locator(f"#{active}").get_attribute("aria-selected") == "true"
    # Filters narrow the same search: the label, then the type.
    page.get_by_label("Labels").fill("team=zo")
    page.get_by_label("Labels").press("Tab")
    expect(page.locator(".count").first).to_have_text(
        f"{api_total(server, tenant.tenant, query='zo', labels='team=zo')} matches"
    )
    page.get_by_label("Type").select_option("PROFILE_TYPE_API_KEY")
    expect(page.locator(".count").first).to_have_text("0 matches")
    # Escape clears the search; Enter on a match opens its page.
    page.get_by_label("Type").select_option("")
    page.get_by_label("Labels").fill("")
    box.press("Escape")
    expect(box).to_have_value("")
    box.press_sequentially("Zoë Q", delay=30)
    expect(listbox.get_by_role("option")).to_have_count(1)
    box.press("Enter")
    expect(page.get_by_role("heading", name="Zoë Quinn")).to_be_visible()
    console.check_traffic()


def test_a_stale_answer_is_cancelled_and_never_painted_over_a_newer_one(
    console: Console, tenant: ConsoleAccount
) -> None:
    sign_in_with_key(console, tenant.tenant.api_key)
    console.goto("/profiles")
    page = console.page
    held: list[Route] = []
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.url))

    def hold_zo(route: Route) -> None:
        # The answer for `zo` is held back until the one for `zol` has been painted.
        if "query=zo&" in route.request.url:
            held.append(route)
        else:
            route.continue_()

    page.route("**/v1/account/profiles?*", hold_zo)
    box = page.get_by_role("combobox", name="Search profiles")
    box.press_sequentially("zo", delay=30)
    for _ in range(100):
        if held:
            break
        page.wait_for_timeout(50)
    assert len(held) == 1
    box.press("l")
    listbox = page.get_by_role("listbox")
    expect(listbox).to_have_attribute("data-query", "zol")
    for route in held:
        with contextlib.suppress(PlaywrightError):
            route.continue_()
    page.wait_for_timeout(500)
    expect(listbox).to_have_attribute("data-query", "zol")
    names = listbox.get_by_role("option").all_inner_texts()
    assert names and all("zol" in name.lower() for name in names), names
    # The browser was told to drop the stale request.
    assert any("query=zo&" in url for url in failed), failed


def test_a_member_is_added_through_the_picker_with_the_keyboard_alone(
    console: Console, server: Server, tenant: ConsoleAccount
) -> None:
    sign_in_with_key(console, tenant.tenant.api_key)
    console.goto(f"/workspaces/{tenant.workspace_id}")
    page = console.page
    box = page.get_by_role("combobox", name="Find a person")
    for _ in range(60):
        if box.evaluate("element => element === document.activeElement"):
            break
        page.keyboard.press("Tab")
    else:
        pytest.fail("the picker cannot be reached with Tab")
    page.keyboard.type("zolt", delay=30)
    expect(page.get_by_role("listbox").get_by_role("option")).to_have_count(1)
    page.keyboard.press("Enter")
    members = page.get_by_role("list", name="Members")
    expect(members).to_contain_text("Zoltan Kodály")
    expect(page.get_by_role("status").first).to_contain_text("was added")
    with server.http(tenant.tenant.api_key) as http:
        listed = http.get(f"/v1/account/workspaces/{tenant.workspace_id}/members").json()
    assert tenant.people["Zoltan Kodály"] in [m["profileId"] for m in listed["items"]]
    # And removed again.
    page.get_by_role("button", name="Remove Zoltan Kodály").click()
    expect(members).not_to_contain_text("Zoltan Kodály")
    console.check_traffic()


def test_a_workspace_is_created_renamed_archived_and_found_in_the_audit_log(
    console: Console, tenant: ConsoleAccount
) -> None:
    sign_in_with_key(console, tenant.tenant.api_key)
    console.goto("/workspaces")
    page = console.page
    form = page.locator("form", has=page.get_by_role("heading", name="New workspace"))
    form.get_by_label("Name").fill("Scratch")
    form.get_by_role("button", name="Create workspace").click()
    page.get_by_role("link", name="Scratch", exact=True).click()
    expect(page.get_by_role("heading", level=1, name="Scratch")).to_be_visible()
    workspace_id = page.url.rsplit("/", 1)[1]
    page.get_by_label("Name", exact=True).fill("Scratch 2")
    page.get_by_role("button", name="Rename").click()
    expect(page.get_by_role("heading", level=1, name="Scratch 2")).to_be_visible()
    page.get_by_role("button", name="Archive…").click()
    page.get_by_role("button", name="Archive", exact=True).click()
    expect(page.get_by_role("status").first).to_contain_text("archived")
    expect(page.get_by_role("button", name="Rename")).to_have_count(0)
    # The audit log, filtered by action: the archive, with the workspace it touched.
    page.get_by_role("navigation", name="Console").get_by_role("link", name="Audit log").click()
    page.get_by_label("Action").fill("workspace.archive")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator(".count")).to_have_text("1 events")
    rows = page.get_by_role("region", name="Audit events").locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(workspace_id)
    console.check_traffic()


# --- Account, keys, webhooks -------------------------------------------------------------


def test_the_webhook_secret_is_revealed_and_rotated_after_a_confirmation(
    console: Console, server: Server, tenant: ConsoleAccount
) -> None:
    with server.http(tenant.tenant.api_key) as http:
        before = http.get("/v1/account").json()["info"]["webhookEventsHmacSecret"]
    sign_in_with_key(console, tenant.tenant.api_key)
    page = console.page
    secret = page.get_by_test_id("webhook-secret")
    assert before not in secret.inner_text()
    page.get_by_role("button", name="Reveal secret").click()
    expect(secret).to_have_text(before)
    page.get_by_label("Grace period for the old secret").select_option("3600")
    page.get_by_role("button", name="Rotate secret…").click()
    page.get_by_role("button", name="Rotate now").click()
    expect(page.get_by_role("status").first).to_contain_text("rotated")
    with server.http(tenant.tenant.api_key) as http:
        after = http.get("/v1/account").json()["info"]
    assert after["webhookEventsHmacSecret"] != before
    assert after["previousSecretExpiresAt"]
    expect(secret).to_have_text(after["webhookEventsHmacSecret"])
    console.check_traffic()


def test_a_key_is_created_and_its_token_copied_once(
    console: Console, server: Server, tenant: ConsoleAccount
) -> None:
    sign_in_with_key(console, tenant.tenant.api_key)
    console.goto("/api_keys")
    page = console.page
    form = page.locator("form", has=page.get_by_role("heading", name="New API key"))
    form.get_by_label("Name").fill("console made")
    form.get_by_label("workspaces:read").check()
    form.get_by_label("Picked").check()
    form.get_by_role("button", name="Create key").click()
    token = page.get_by_test_id("token").first
    expect(token).to_contain_text("cdy_")
    page.get_by_role("button", name="Copy token").first.click()
    expect(page.get_by_text("Copied to the clipboard")).to_be_visible()
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == token.inner_text()
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        reached = http.get("/v1/workspaces", headers={"Authorization": f"Bearer {copied}"})
    assert reached.status_code == 200, reached.text
    assert [w["metadata"]["name"] for w in reached.json()["items"]] == ["Picked"]
    # Shown once: a reload shows the key, not its token.
    page.reload()
    expect(page.get_by_text("console made")).to_be_visible()
    assert page.get_by_test_id("token").count() == 0
    # Disabled from its row: the token stops working.
    row = page.locator("li.key", has=page.get_by_text("console made"))
    row.get_by_role("button", name="Disable").click()
    expect(row.get_by_text("Disabled", exact=True)).to_be_visible()
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        refused = http.get("/v1/workspaces", headers={"Authorization": f"Bearer {copied}"})
    assert refused.status_code == 401
    console.check_traffic()


def test_a_failed_delivery_is_seen_and_retried(
    console: Console, server: Server, tenant: ConsoleAccount
) -> None:
    receiver = Receiver(plan=lambda n, delivery: (500, {}, 0.0)).start()
    try:
        host = urlsplit(receiver.url).netloc
        with server.http(tenant.tenant.api_key) as http:
            trusted = http.post(
                "/v1/account/trusted_endpoints",
                json={"metadata": {"name": host}, "spec": {"host": host}},
            )
            assert trusted.status_code in (200, 409), trusted.text
        sign_in_with_key(console, tenant.tenant.api_key)
        console.goto("/webhooks")
        page = console.page
        page.get_by_label("URL").fill(receiver.url)
        page.get_by_label("Description").fill("always 500")
        page.get_by_role("button", name="Add endpoint").click()
        expect(page.get_by_role("heading", name="Webhook endpoint")).to_be_visible()
        endpoint_id = page.url.rsplit("/", 1)[1]
        page.get_by_role("button", name="Send test event").click()
        expect(page.get_by_role("status").first).to_contain_text("test event")
        delivery = wait_for_delivery(server, tenant.tenant, endpoint_id, "FAILED")
        attempts = delivery["data"]["attemptCount"]
        assert attempts >= 1
        page.get_by_role("button", name="Refresh").click()
        row = page.locator("tr[data-status='WEBHOOK_DELIVERY_STATUS_FAILED']").filter(
            has_text="webhook.test"
        )
        expect(row).to_contain_text("500")
        expect(row).to_contain_text("Failed")
        shot(page, "admin-webhook-endpoint")
        check_accessibility(page, "webhook endpoint")
        seen = len(receiver.deliveries)
        row.get_by_role("button", name="Retry").click()
        expect(page.get_by_role("status").first).to_contain_text("queued again")
        receiver.wait_count(seen + 1)
        retried = wait_for_delivery(server, tenant.tenant, endpoint_id, "FAILED", attempts + 1)
        assert retried["metadata"]["id"] == delivery["metadata"]["id"]
        # Recover: every failed delivery since a time, queued again (the browser's local time).
        since = (datetime.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
        page.get_by_label("Recover failed deliveries since").fill(since)
        page.get_by_role("button", name="Recover").click()
        expect(page.get_by_role("status").first).to_contain_text("failed deliveries were queued")
        wait_for_delivery(server, tenant.tenant, endpoint_id, "FAILED", attempts + 2)
    finally:
        receiver.stop()
    console.check_traffic()


def wait_for_delivery(
    server: Server, tenant: Tenant, endpoint_id: str, status: str, attempts: int = 1
) -> dict[str, Any]:
    """The endpoint's test event's delivery once it has `status` and `attempts`."""
    deadline = time.monotonic() + 60
    with server.http(tenant.api_key) as http:
        while time.monotonic() < deadline:
            items = http.get(f"/v1/account/webhook_endpoints/{endpoint_id}/deliveries").json()[
                "items"
            ]
            done = [
                d
                for d in items
                if d["data"]["eventType"] == "webhook.test"
                and d["data"]["status"] == f"WEBHOOK_DELIVERY_STATUS_{status}"
                and d["data"]["attemptCount"] >= attempts
            ]
            if done:
                return done[0]
            time.sleep(0.2)
    raise AssertionError(f"no {status} delivery with {attempts} attempts: {items}")


def test_an_sso_connection_and_a_scim_key_are_made_from_their_page(
    console: Console, server: Server, idp: str, tenant: ConsoleAccount
) -> None:
    sign_in_with_key(console, tenant.tenant.api_key)
    console.goto("/sso")
    page = console.page
    domain = f"s{secrets.token_hex(4)}.example"
    form = page.locator("form", has=page.get_by_role("heading", name="New connection"))
    form.get_by_label("Name").fill("Second IdP")
    form.get_by_label("Issuer URL").fill(idp)
    form.get_by_label("Client id").fill("second-client")
    form.get_by_label("Client secret").fill("second-secret-0123456789")
    form.get_by_label("Allowed email domains").fill(domain)
    form.get_by_role("button", name="Connect").click()
    expect(page.get_by_role("status").first).to_contain_text("connection was created")
    connections = page.get_by_role("list", name="SSO connections")
    expect(connections).to_contain_text("Second IdP")
    expect(connections).to_contain_text(f"{server.base_url}/auth/sso/callback")
    # A refusal shows the server's message: the domain belongs to a connection already.
    form.get_by_role("button", name="Connect").click()
    expect(page.get_by_role("alert").first).to_contain_text("already belongs")
    keys = page.locator("form", has=page.get_by_role("heading", name="New SCIM key"))
    keys.get_by_label("Name").fill("okta provisioning")
    keys.get_by_label("All workspaces").check()
    keys.get_by_role("button", name="Create key").click()
    token = page.get_by_test_id("token").first
    expect(token).to_contain_text("cdy_")
    expect(page.get_by_role("list", name="SCIM keys")).to_contain_text("okta provisioning")
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        scim = http.get("/scim/v2/Users", headers={"Authorization": f"Bearer {token.inner_text()}"})
    assert scim.status_code == 200, scim.text
    console.check_traffic()


# --- A member ----------------------------------------------------------------------------


def test_a_member_sees_no_administrative_action_and_is_refused_if_forced(
    console: Console, idp: str, tenant: ConsoleAccount
) -> None:
    sign_in_with_sso(console, idp, f"mo@{tenant.domain}", groups=[])
    page = console.page
    expect(page.get_by_text("(workspaces:read)")).to_be_visible()
    nav = page.get_by_role("navigation", name="Console")
    assert nav.get_by_role("link").all_inner_texts() == ["Account", "Workspaces"]
    for path, name in (
        ("/", "account"),
        ("/workspaces", "workspaces"),
        (f"/workspaces/{tenant.workspace_id}", "workspace"),
    ):
        console.goto(path)
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        shot(page, f"member-{name}")
        check_accessibility(page, f"member {path}")
        shown = page.get_by_role("button").all_inner_texts()
        assert not set(shown) & set(ADMIN_ACTIONS), (path, shown)
        assert page.get_by_role("combobox").count() == 0
    # Forced: the same calls the administrator's buttons make, with a valid CSRF token.
    statuses = page.evaluate(
        """async ([workspace]) => {
            const session = await (await fetch('/auth/session')).json();
            const send = (method, path, body) => fetch(path, {
                method,
                headers: {'X-CSRF-Token': session.csrfToken, 'Content-Type': 'application/json'},
                body: body === undefined ? undefined : JSON.stringify(body),
            }).then(r => r.status);
            return [
                await send('POST', '/v1/account:rotateWebhookSigningKey', {}),
                await send('GET', '/v1/account/profiles?query=zo'),
                await send('POST', '/v1/account/workspaces', {metadata: {name: 'nope'}}),
                await send('DELETE', `/v1/account/workspaces/${workspace}`),
                await send('POST', '/v1/account/api_keys', {metadata: {name: 'nope'}}),
                await send('GET', '/v1/account/audit_events'),
            ];
        }""",
        [tenant.workspace_id],
    )
    assert statuses == [403] * 6, statuses
    console.check_traffic()


# --- The server's side of the console ----------------------------------------------------


def test_console_routes_serve_the_page_and_cached_assets_under_the_policy(server: Server) -> None:
    with server.http() as http:
        page = http.get("/console/workspaces/anything")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["cache-control"] == "no-cache"
        assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert "<script>" not in page.text and " style=" not in page.text
        assets = [url for url in page.text.split('"') if url.startswith("/console/assets/")]
        assert {a.rsplit(".", 1)[1] for a in assets} == {"js", "css"}
        for asset in assets:
            response = http.get(asset)
            assert response.status_code == 200, asset
            assert "immutable" in response.headers["cache-control"]
            assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        missing = http.get("/console/assets/nothing.js")
        assert missing.status_code == 404
        assert missing.json()["code"] == 5
        # No path reaches the file system: this is a route of the app, answered by the page.
        climbing = http.get("/console/assets/..%2f..%2fapp.py")
        assert climbing.headers["content-type"].startswith("text/html")
        assert climbing.text == page.text
        # The API's answers carry the policy too.
        assert http.get("/healthz").headers["content-security-policy"] == CONTENT_SECURITY_POLICY


def test_a_session_from_an_api_key_ends_with_the_key(server: Server) -> None:
    tenant = make_account(server, name="Keyed", domain="keyed.io")
    origin = {"Origin": server.base_url}
    with server.http(tenant.api_key) as admin:
        made = admin.post(
            "/v1/account/api_keys",
            json={"metadata": {"name": "session key"}, "spec": {"permissions": ["*"]}},
        ).json()
    key_id, token = made["metadata"]["id"], made["spec"]["token"]

    def signed_in() -> httpx.Client:
        browser = httpx.Client(base_url=server.base_url, timeout=30)
        started = browser.post("/auth/api_key", json={"apiKey": token}, headers=origin)
        assert started.status_code == 200, started.text
        assert started.json()["permissions"] == ["*"]
        assert started.json()["profile"]["spec"]["type"] == "PROFILE_TYPE_API_KEY"
        return browser

    # Only from this server's pages.
    with httpx.Client(base_url=server.base_url, timeout=30) as other:
        cross = other.post(
            "/auth/api_key", json={"apiKey": token}, headers={"Origin": "https://evil.example"}
        )
        assert cross.status_code == 403
        assert "cadenya_session" not in other.cookies
        wrong = other.post("/auth/api_key", json={"apiKey": token + "x"}, headers=origin)
        assert wrong.status_code == 401
    for end in ("disable", "rotate", "delete"):
        browser = signed_in()
        try:
            assert browser.get("/v1/account").status_code == 200
            with server.http(tenant.api_key) as admin:
                if end == "delete":
                    assert admin.delete(f"/v1/account/api_keys/{key_id}").status_code == 200
                else:
                    ended = admin.post(f"/v1/account/api_keys/{key_id}:{end}")
                    assert ended.status_code == 200, ended.text
                    if end == "rotate":
                        token = ended.json()["spec"]["token"]
                    else:
                        assert browser.get("/v1/account").status_code == 401
                        # Enabled again, the key works; the session it started stays ended.
                        assert admin.post(f"/v1/account/api_keys/{key_id}:enable").is_success
            assert browser.get("/v1/account").status_code == 401, end
            assert browser.get("/auth/session").status_code == 401, end
        finally:
            browser.close()


def test_a_session_from_a_key_acts_with_the_keys_scopes(server: Server) -> None:
    tenant = make_account(server, name="Scoped", domain="scoped.io")
    with server.http(tenant.api_key) as admin:
        made = admin.post(
            "/v1/account/api_keys",
            json={
                "metadata": {"name": "reader"},
                "spec": {"permissions": ["workspaces:read"], "allWorkspaces": True},
            },
        ).json()
    with httpx.Client(base_url=server.base_url, timeout=30) as browser:
        started = browser.post(
            "/auth/api_key",
            json={"apiKey": made["spec"]["token"]},
            headers={"Origin": server.base_url},
        )
        assert started.status_code == 200, started.text
        assert started.json()["permissions"] == ["workspaces:read"]
        assert browser.get("/v1/account/workspaces").status_code == 200
        assert browser.get("/v1/account/profiles").status_code == 403
        headers = {"Origin": server.base_url, "X-CSRF-Token": started.json()["csrfToken"]}
        created = browser.post(
            "/v1/account/workspaces", json={"metadata": {"name": "x"}}, headers=headers
        )
        assert created.status_code == 403
