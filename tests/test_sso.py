"""Sign-in through an account's identity provider, end to end: SSO connections, the browser
flow against a real OpenID Provider on loopback, the ID token attacks, role mapping, IdP
access tokens on the API, deprovisioning and tenant isolation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import sync_playwright
from sqlalchemy import select

from cadenya_server.models import BrowserSession, SsoConnection
from conftest import Server, Tenant, jwt_for, make_account, make_profile
from helpers import server_with
from oidc_providers import (
    ForgingProvider,
    random_sub,
    real_provider,
    set_person,
    sign_in_at_real_provider,
)
from test_docs import CHROMIUM
from test_webhooks import messages
from webhook_receiver import Receiver, webhook_endpoint

AUDIENCE = "api://cadenya"


@pytest.fixture(scope="module")
def idp() -> Iterator[str]:
    with real_provider() as issuer:
        yield issuer


@pytest.fixture(scope="module")
def forge() -> Iterator[ForgingProvider]:
    with ForgingProvider() as provider:
        yield provider


def new_domain() -> str:
    return f"d{secrets.token_hex(4)}.example"


def connect(server: Server, tenant: Tenant, issuer: str, domain: str, **spec: Any) -> dict:
    with server.http(tenant.api_key) as http:
        response = http.post(
            "/v1/account/sso_connections",
            json={
                "metadata": {"name": "Our IdP"},
                "spec": {
                    "issuer": issuer,
                    "clientId": "cadenya-client",
                    "clientSecret": "a-client-secret-0123456789",
                    "allowedEmailDomains": [domain],
                    **spec,
                },
            },
        )
    assert response.status_code == 200, response.text
    return response.json()


def browser(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, timeout=30)


def csrf_headers(server: Server, client: httpx.Client) -> dict[str, str]:
    signed_in = client.get("/auth/session")
    assert signed_in.status_code == 200, signed_in.text
    return {"Origin": server.base_url, "X-CSRF-Token": signed_in.json()["csrfToken"]}


# --- Connections -------------------------------------------------------------------------


def test_connections_are_administered_with_the_secret_masked_and_encrypted(
    server: Server, account: Tenant, idp: str
) -> None:
    domain = new_domain()
    created = connect(
        server, account, idp, domain, roleMapping={"claim": "groups", "adminValues": ["admins"]}
    )
    connection_id = created["metadata"]["id"]
    assert created["spec"]["clientSecret"] == "********6789"
    assert created["spec"]["roleMapping"] == {"claim": "groups", "adminValues": ["admins"]}
    assert created["info"]["callbackUrl"] == f"{server.base_url}/auth/sso/callback"
    with server.runtime.db.transaction() as session:
        row = session.scalars(select(SsoConnection).where(SsoConnection.id == connection_id)).one()
        assert "a-client-secret" not in row.client_secret_ciphertext
        assert row.authorization_endpoint.startswith(idp)
    with server.http(account.api_key) as http:
        assert http.get(f"/v1/account/sso_connections/{connection_id}").json() == created
        listed = http.get("/v1/account/sso_connections").json()
        assert connection_id in [c["metadata"]["id"] for c in listed["items"]]
        changed = http.patch(
            f"/v1/account/sso_connections/{connection_id}",
            json={"spec": {"createProfiles": True}, "updateMask": "spec.createProfiles"},
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["spec"]["createProfiles"] is True
        # Bearer tokens need an audience.
        refused = http.patch(
            f"/v1/account/sso_connections/{connection_id}",
            json={"spec": {"acceptBearerTokens": True}},
        )
        assert refused.status_code == 400 and "audience" in refused.text
        # A domain belongs to one connection on the server.
        other = make_account(server, name="Other", domain="other.io")
        with server.http(other.api_key) as theirs:
            taken = theirs.post(
                "/v1/account/sso_connections",
                json={
                    "metadata": {"name": "squatter"},
                    "spec": {
                        "issuer": idp,
                        "clientId": "x",
                        "clientSecret": "y",
                        "allowedEmailDomains": [domain.upper()],
                    },
                },
            )
            assert taken.status_code == 409, taken.text
            # Another account's connection does not exist for them.
            assert theirs.get(f"/v1/account/sso_connections/{connection_id}").status_code == 404
            assert theirs.delete(f"/v1/account/sso_connections/{connection_id}").status_code == 404
        assert http.delete(f"/v1/account/sso_connections/{connection_id}").status_code == 200
        assert http.get(f"/v1/account/sso_connections/{connection_id}").status_code == 404


def test_a_connection_needs_a_reachable_https_issuer_and_an_administrator(
    server: Server, account: Tenant
) -> None:
    member = make_profile(server, account.id, name="Mem", email="mem@acme.io")
    body = {
        "metadata": {"name": "x"},
        "spec": {
            "issuer": "http://idp.example.com",
            "clientId": "x",
            "clientSecret": "y",
            "allowedEmailDomains": [new_domain()],
        },
    }
    with server.http(jwt_for(server, member, account.id)) as http:
        assert http.post("/v1/account/sso_connections", json=body).status_code == 403
    with server.http(account.api_key) as http:
        plain = http.post("/v1/account/sso_connections", json=body)
        assert plain.status_code == 400 and plain.json()["code"] == 3, plain.text
        body["spec"]["issuer"] = "http://127.0.0.1:9"
        unreachable = http.post("/v1/account/sso_connections", json=body)
        assert unreachable.status_code == 400 and unreachable.json()["code"] == 9
        body["spec"]["allowedEmailDomains"] = ["not a domain"]
        assert http.post("/v1/account/sso_connections", json=body).status_code == 400


# --- The browser flow against a real provider --------------------------------------------


def test_the_whole_browser_flow_signs_in_audits_and_announces(
    server: Server, account: Tenant, idp: str
) -> None:
    domain = new_domain()
    receiver = Receiver().start()
    try:
        webhook_endpoint(server, account, receiver.url, eventTypes=["profile.created"])
        connect(server, account, idp, domain, createProfiles=True)
        sub, email = random_sub(), f"grace@{domain}"
        set_person(idp, sub, email=email, email_verified=True, name="Grace Hopper")
        with browser(server) as client:
            landed = sign_in_at_real_provider(
                client, f"{server.base_url}/auth/sso/start?email={email}", sub
            )
            assert landed.status_code == 200, landed.text
            assert landed.url.path == "/auth/session"
            me = landed.json()
            assert me["profile"]["spec"]["email"] == email
            assert me["profile"]["spec"]["role"] == "member"
            (cookie,) = [
                c
                for c in landed.history[-1].headers.get_list("set-cookie")
                if c.startswith("cadenya_session=")
            ]
            attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
            assert {"httponly", "path"} <= attributes and "samesite=lax" in cookie.lower()
            # Host-only; not Secure on loopback, where the server is plain http.
            assert "domain" not in attributes and "secure" not in attributes
            whoami = client.get("/v1/whoami")
            assert whoami.status_code == 200
            assert whoami.json()["profile"]["metadata"]["id"] == me["profile"]["metadata"]["id"]
            # A change made with the cookie needs this server's Origin and the CSRF token.
            headers = csrf_headers(server, client)
            assert client.post("/auth/logout").status_code == 403
            assert (
                client.post(
                    "/auth/logout", headers={**headers, "Origin": "https://evil.example"}
                ).status_code
                == 403
            )
            assert (
                client.post("/auth/logout", headers={"Origin": server.base_url}).status_code == 403
            )
            assert client.post("/auth/logout", headers=headers).status_code == 200
            assert client.get("/auth/session").status_code == 401
            assert client.get("/v1/whoami").status_code == 401
        profile_id = me["profile"]["metadata"]["id"]
        with server.http(account.api_key) as http:
            trail = http.get("/v1/account/audit_events").json()["items"]
        actions = {(e["action"], e["resourceId"]) for e in trail}
        assert {("profile.create", profile_id), ("auth.sign_in", profile_id)} <= actions
        created = [m for m in messages(server, account) if m["type"] == "profile.created"]
        assert [m["data"]["metadata"]["id"] for m in created] == [profile_id]
    finally:
        receiver.stop()


def test_a_person_signs_in_with_a_real_browser(server: Server, account: Tenant, idp: str) -> None:
    if not CHROMIUM.exists():
        message = f"no browser at {CHROMIUM} (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    domain = new_domain()
    connect(server, account, idp, domain, createProfiles=True)
    sub, email = random_sub(), f"linus@{domain}"
    set_person(idp, sub, email=email, email_verified=True, name="Linus")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            page = chromium.new_page()
            page.goto(f"{server.base_url}/auth/sso/start?email={email}")
            # The provider's own login form.
            page.fill('input[name="sub"]', sub)
            page.click("button:has-text('Authorize')")
            page.wait_for_url(f"{server.base_url}/auth/session")
            me = json.loads(page.inner_text("body"))
            (cookie,) = [c for c in page.context.cookies() if c["name"] == "cadenya_session"]
            scripts_see = page.evaluate("document.cookie")
            # Same-origin fetches: the browser sets Origin itself; the page adds the token.
            statuses = page.evaluate(
                """async () => {
                    const session = await (await fetch('/auth/session')).json();
                    const bare = await fetch('/auth/logout', {method: 'POST'});
                    const out = await fetch('/auth/logout', {
                        method: 'POST', headers: {'X-CSRF-Token': session.csrfToken}});
                    const after = await fetch('/auth/session');
                    return [bare.status, out.status, after.status];
                }"""
            )
        finally:
            chromium.close()
    assert me["profile"]["spec"]["email"] == email
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and not cookie["secure"]
    assert cookie["domain"] == "127.0.0.1"  # host-only: set without a Domain attribute
    assert "cadenya_session" not in scripts_see
    assert statuses == [403, 200, 401]


def test_only_existing_profiles_sign_in_without_create_profiles(
    server: Server, account: Tenant, idp: str
) -> None:
    domain = new_domain()
    connect(server, account, idp, domain)
    stranger, known = random_sub(), random_sub()
    set_person(idp, stranger, email=f"stranger@{domain}", email_verified=True)
    set_person(idp, known, email=f"Known@{domain}", email_verified=True)
    profile_id = make_profile(server, account.id, name="Known", email=f"known@{domain}")
    with browser(server) as client:
        refused = sign_in_at_real_provider(client, f"/auth/sso/start?email=x@{domain}", stranger)
        assert refused.status_code == 403, refused.text
        landed = sign_in_at_real_provider(client, f"/auth/sso/start?email=x@{domain}", known)
        assert landed.json()["profile"]["metadata"]["id"] == profile_id


def test_a_replayed_code_is_refused(server: Server, account: Tenant, idp: str) -> None:
    domain = new_domain()
    connection = connect(server, account, idp, domain, createProfiles=True)
    sub = random_sub()
    set_person(idp, sub, email=f"r@{domain}", email_verified=True)
    with browser(server) as client:
        first = sign_in_at_real_provider(
            client, f"/auth/sso/start?email=r@{domain}", sub, follow=False
        )
        assert first.status_code == 303
        code = httpx.URL(str(first.request.url)).params["code"]
        # A new sign-in (fresh state, nonce and verifier) with the old code.
        started = client.get(f"/auth/sso/start?connection={connection['metadata']['id']}")
        state = httpx.URL(started.headers["location"]).params["state"]
        replayed = client.get("/auth/sso/callback", params={"code": code, "state": state})
        assert replayed.status_code == 401, replayed.text
        # …and the callback of the first sign-in, replayed whole: its state is used up.
        assert client.get(str(first.request.url)).status_code == 401


def test_role_mapping_applies_at_every_sign_in_and_keeps_the_last_administrator(
    server: Server, idp: str
) -> None:
    tenant = make_account(server, name="Roles", domain="roles.io")
    domain = new_domain()
    connect(
        server,
        tenant,
        idp,
        domain,
        createProfiles=True,
        roleMapping={"claim": "groups", "adminValues": ["cadenya-admins"]},
    )
    sub, email = random_sub(), f"ada@{domain}"
    start = f"/auth/sso/start?email={email}"
    set_person(idp, sub, email=email, email_verified=True, groups=["staff", "cadenya-admins"])
    with browser(server) as client:
        assert (
            sign_in_at_real_provider(client, start, sub).json()["profile"]["spec"]["role"]
            == "admin"
        )
        set_person(idp, sub, email=email, email_verified=True, groups=["staff"])
        assert (
            sign_in_at_real_provider(client, start, sub).json()["profile"]["spec"]["role"]
            == "member"
        )
        set_person(idp, sub, email=email, email_verified=True, groups=["cadenya-admins"])
        me = sign_in_at_real_provider(client, start, sub).json()["profile"]
        assert me["spec"]["role"] == "admin"
        # Now the only administrator: the first one is removed, through the cookie.
        removed = client.delete(
            f"/v1/account/profiles/{tenant.admin_profile_id}", headers=csrf_headers(server, client)
        )
        assert removed.status_code == 200, removed.text
        set_person(idp, sub, email=email, email_verified=True, groups=[])
        after = sign_in_at_real_provider(client, start, sub).json()["profile"]
        assert after["spec"]["role"] == "admin"
    with server.http(tenant.api_key) as http:
        trail = http.get("/v1/account/audit_events").json()["items"]
    role_changes = [
        e["details"]["role"]
        for e in trail
        if e["action"] == "profile.update" and e["resourceId"] == me["metadata"]["id"]
    ]
    # Newest first: admin (again), member; the refused demotion is no change.
    assert role_changes == ["admin", "member"]


# --- ID token attacks ----------------------------------------------------------------------


def _forge_connection(
    server: Server, tenant: Tenant, forge: ForgingProvider, domain: str, **spec: Any
) -> dict:
    return connect(server, tenant, forge.issuer, domain, createProfiles=True, **spec)


def _attempt(
    server: Server, forge: ForgingProvider, connection_id: str, make_token: Any
) -> httpx.Response:
    with browser(server) as client:
        request = forge.start(client, server.base_url, connection_id)
        forge.next_id_token = make_token(request)
        return forge.callback(client, server.base_url, state=request["state"])


def _compact(header: dict, claims: dict, sign: Any = None) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    signing_input = f"{part(header)}.{part(claims)}"
    signature = sign(signing_input.encode()) if sign else b""
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def _hs256_with_public_key(forge: ForgingProvider, claims: dict) -> str:
    """The classic forgery: an HMAC keyed with the IdP's public key (PEM), for a verifier
    that lets the header pick the algorithm."""
    public_pem = forge.key.as_pem(private=False)
    return _compact(
        {"alg": "HS256", "kid": "forge-1"},
        claims,
        lambda data: hmac.new(public_pem, data, hashlib.sha256).digest(),
    )


def _alg_none(claims: dict) -> str:
    return _compact({"alg": "none", "kid": "forge-1"}, claims)


ATTACKS = {
    "wrong aud": lambda f, c, d, r: f.sign(
        f.claims(
            audience="someone-else", sub=c, nonce=r["nonce"], email=f"a@{d}", email_verified=True
        )
    ),
    "wrong iss": lambda f, c, d, r: f.sign(
        {
            **f.claims(
                audience="cadenya-client",
                sub=c,
                nonce=r["nonce"],
                email=f"a@{d}",
                email_verified=True,
            ),
            "iss": "https://evil.example",
        }
    ),
    "expired": lambda f, c, d, r: f.sign(
        {
            **f.claims(
                audience="cadenya-client",
                sub=c,
                nonce=r["nonce"],
                email=f"a@{d}",
                email_verified=True,
            ),
            "exp": 1_000_000_000,
        }
    ),
    "nonce of another sign-in": lambda f, c, d, r: f.sign(
        f.claims(
            audience="cadenya-client",
            sub=c,
            nonce="replayed-" + r["nonce"][:10],
            email=f"a@{d}",
            email_verified=True,
        )
    ),
    "no nonce": lambda f, c, d, r: f.sign(
        f.claims(audience="cadenya-client", sub=c, email=f"a@{d}", email_verified=True)
    ),
    "alg none": lambda f, c, d, r: _alg_none(
        f.claims(
            audience="cadenya-client", sub=c, nonce=r["nonce"], email=f"a@{d}", email_verified=True
        )
    ),
    "HS256 with the public key": lambda f, c, d, r: _hs256_with_public_key(
        f,
        f.claims(
            audience="cadenya-client", sub=c, nonce=r["nonce"], email=f"a@{d}", email_verified=True
        ),
    ),
    "unknown kid": lambda f, c, d, r: f.sign(
        f.claims(
            audience="cadenya-client", sub=c, nonce=r["nonce"], email=f"a@{d}", email_verified=True
        ),
        header={"alg": "RS256", "kid": "not-a-key"},
    ),
    "email_verified false": lambda f, c, d, r: f.sign(
        f.claims(
            audience="cadenya-client", sub=c, nonce=r["nonce"], email=f"a@{d}", email_verified=False
        )
    ),
    "email_verified missing": lambda f, c, d, r: f.sign(
        f.claims(audience="cadenya-client", sub=c, nonce=r["nonce"], email=f"a@{d}")
    ),
    "email outside the allowed domains": lambda f, c, d, r: f.sign(
        f.claims(
            audience="cadenya-client",
            sub=c,
            nonce=r["nonce"],
            email="a@elsewhere.example",
            email_verified=True,
        )
    ),
}


@pytest.fixture(scope="module")
def forged_account(server: Server, forge: ForgingProvider) -> tuple[Tenant, str, str]:
    tenant = make_account(server, name="Forged", domain="forged.io")
    domain = new_domain()
    connection = _forge_connection(server, tenant, forge, domain)
    return tenant, domain, connection["metadata"]["id"]


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_each_id_token_attack_is_refused(
    server: Server, forge: ForgingProvider, forged_account: tuple[Tenant, str, str], attack: str
) -> None:
    _, domain, connection_id = forged_account
    sub = random_sub()
    response = _attempt(
        server, forge, connection_id, lambda r: ATTACKS[attack](forge, sub, domain, r)
    )
    assert response.status_code in (401, 403), (attack, response.text)
    assert (
        "set-cookie" not in response.headers
        or "cadenya_session=" not in response.headers["set-cookie"]
    )
    # The same sign-in with an honest token goes through: the refusal was the attack's.
    honest = _attempt(
        server,
        forge,
        connection_id,
        lambda r: forge.sign(
            forge.claims(
                audience="cadenya-client",
                sub=sub,
                nonce=r["nonce"],
                email=f"a-{sub}@{domain}",
                email_verified=True,
            )
        ),
    )
    assert honest.status_code == 303, honest.text


def test_state_missing_reused_or_from_another_browser_is_refused(
    server: Server, forge: ForgingProvider, forged_account: tuple[Tenant, str, str]
) -> None:
    _, domain, connection_id = forged_account
    sub = random_sub()
    with browser(server) as client:
        request = forge.start(client, server.base_url, connection_id)
        forge.next_id_token = forge.sign(
            forge.claims(
                audience="cadenya-client",
                sub=sub,
                nonce=request["nonce"],
                email=f"s@{domain}",
                email_verified=True,
            )
        )
        assert client.get("/auth/sso/callback", params={"code": "c"}).status_code == 401
        with browser(server) as other:
            # The callback URL carried to another browser (login CSRF).
            assert forge.callback(other, server.base_url, state=request["state"]).status_code == 401
        assert forge.callback(client, server.base_url, state=request["state"]).status_code == 303
        assert forge.callback(client, server.base_url, state=request["state"]).status_code == 401


# --- IdP access tokens on the API ----------------------------------------------------------


def test_idp_access_tokens_call_the_api_for_the_linked_profile_only(
    server: Server, forge: ForgingProvider
) -> None:
    tenant = make_account(server, name="Tokens", domain="tokens.io")
    domain = new_domain()
    connection_id = _forge_connection(
        server, tenant, forge, domain, acceptBearerTokens=True, audience=AUDIENCE
    )["metadata"]["id"]
    sub = random_sub()
    token = forge.sign(forge.claims(audience=AUDIENCE, sub=sub))
    with server.http(token) as http:
        # Not signed in here yet: the token names no profile.
        assert http.get("/v1/whoami").status_code == 401
    signed_in = _attempt(
        server,
        forge,
        connection_id,
        lambda r: forge.sign(
            forge.claims(
                audience="cadenya-client",
                sub=sub,
                nonce=r["nonce"],
                email=f"t@{domain}",
                email_verified=True,
            )
        ),
    )
    assert signed_in.status_code == 303
    with server.http(token) as http:
        me = http.get("/v1/whoami")
        assert me.status_code == 200, me.text
        assert me.json()["profile"]["spec"]["email"] == f"t@{domain}"
        # A member: administration stays closed.
        assert http.get("/v1/account/profiles").status_code == 403
    refused = {
        "other audience": forge.sign(forge.claims(audience="api://other", sub=sub)),
        "expired": forge.sign({**forge.claims(audience=AUDIENCE, sub=sub), "exp": 1_000_000_000}),
        "alg none": _alg_none(forge.claims(audience=AUDIENCE, sub=sub)),
        "HS256 with the public key": _hs256_with_public_key(
            forge, forge.claims(audience=AUDIENCE, sub=sub)
        ),
        "unknown kid": forge.sign(
            forge.claims(audience=AUDIENCE, sub=sub), header={"alg": "RS256", "kid": "nope"}
        ),
        "another subject": forge.sign(forge.claims(audience=AUDIENCE, sub=sub + "x")),
    }
    for name, bad in refused.items():
        with server.http(bad) as http:
            assert http.get("/v1/whoami").status_code == 401, name


def test_tenant_isolation_of_connections_sessions_and_tokens(
    server: Server, forge: ForgingProvider
) -> None:
    first, second = (
        make_account(server, name="First", domain="first.io"),
        make_account(server, name="Second", domain="second.io"),
    )
    first_domain, second_domain = new_domain(), new_domain()
    first_connection = _forge_connection(
        server, first, forge, first_domain, acceptBearerTokens=True, audience="api://first"
    )["metadata"]["id"]
    second_connection = _forge_connection(
        server, second, forge, second_domain, acceptBearerTokens=True, audience="api://second"
    )["metadata"]["id"]
    with server.http(first.api_key) as http:
        # The same issuer and audience cannot be accepted by two accounts.
        clash = http.patch(
            f"/v1/account/sso_connections/{first_connection}",
            json={"spec": {"audience": "api://second"}},
        )
        assert clash.status_code == 409
    sub = random_sub()
    # The person signs in to the first account only; an email of the first account's
    # domain at the second connection is refused.
    ok = _attempt(
        server,
        forge,
        first_connection,
        lambda r: forge.sign(
            forge.claims(
                audience="cadenya-client",
                sub=sub,
                nonce=r["nonce"],
                email=f"i@{first_domain}",
                email_verified=True,
            )
        ),
    )
    assert ok.status_code == 303
    crossed = _attempt(
        server,
        forge,
        second_connection,
        lambda r: forge.sign(
            forge.claims(
                audience="cadenya-client",
                sub=sub,
                nonce=r["nonce"],
                email=f"i@{first_domain}",
                email_verified=True,
            )
        ),
    )
    assert crossed.status_code == 403
    for audience, expected in (("api://first", 200), ("api://second", 401)):
        with server.http(forge.sign(forge.claims(audience=audience, sub=sub))) as http:
            answer = http.get("/v1/whoami")
            assert answer.status_code == expected, (audience, answer.text)
            if expected == 200:
                assert answer.json()["profile"]["metadata"]["accountId"] == first.id
    # A token for both audiences names no one account.
    both = forge.sign(
        {
            **forge.claims(audience="api://first", sub=sub),
            "aud": ["api://first", "api://second"],
            "azp": "api://first",
        }
    )
    with server.http(both) as http:
        assert http.get("/v1/whoami").status_code == 401


# --- Deprovisioning --------------------------------------------------------------------------


def test_deleting_a_profile_ends_its_session_idp_tokens_and_jwts_on_every_server(
    server: Server, forge: ForgingProvider
) -> None:
    tenant = make_account(server, name="Leavers", domain="leavers.io")
    domain = new_domain()
    connection_id = _forge_connection(
        server, tenant, forge, domain, acceptBearerTokens=True, audience="api://leavers"
    )["metadata"]["id"]
    sub = random_sub()
    with (
        browser(server) as client,
        server_with(server) as second_url,
        httpx.Client(base_url=second_url, timeout=30) as second,
    ):
        request = forge.start(client, server.base_url, connection_id)
        forge.next_id_token = forge.sign(
            forge.claims(
                audience="cadenya-client",
                sub=sub,
                nonce=request["nonce"],
                email=f"l@{domain}",
                email_verified=True,
            )
        )
        me = forge.callback(client, server.base_url, state=request["state"])
        assert me.status_code == 303
        profile_id = client.get("/auth/session").json()["profile"]["metadata"]["id"]
        cookie = {"cadenya_session": client.cookies["cadenya_session"]}
        bearer = {
            "Authorization": f"Bearer {forge.sign(forge.claims(audience='api://leavers', sub=sub))}"
        }
        own_jwt = {"Authorization": f"Bearer {jwt_for(server, profile_id, tenant.id)}"}
        for credentials in (cookie, bearer, own_jwt):
            for base in (client, second):
                assert (
                    base.get(
                        "/v1/whoami",
                        headers=credentials if "Authorization" in credentials else None,
                        cookies=credentials if "cadenya_session" in credentials else None,
                    ).status_code
                    == 200
                )
        with server.http(tenant.api_key) as admin:
            assert admin.delete(f"/v1/account/profiles/{profile_id}").status_code == 200
        for credentials in (cookie, bearer, own_jwt):
            for base in (second, client):
                answer = base.get(
                    "/v1/whoami",
                    headers=credentials if "Authorization" in credentials else None,
                    cookies=credentials if "cadenya_session" in credentials else None,
                )
                assert answer.status_code == 401, credentials
    with server.runtime.db.transaction() as session:
        assert (
            session.scalars(
                select(BrowserSession).where(BrowserSession.profile_id == profile_id)
            ).all()
            == []
        )
