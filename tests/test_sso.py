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
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from joserfc import jwt as jose_jwt
from joserfc.jwk import RSAKey
from playwright.sync_api import sync_playwright
from sqlalchemy import select, update

from cadenya_server.models import BrowserSession, SsoConnection, SsoLogin
from conftest import Server, Tenant, jwt_for, make_account, make_profile
from helpers import server_with
from oidc_providers import (
    ForgingProvider,
    random_sub,
    set_person,
    sign_in_at_real_provider,
)
from test_docs import CHROMIUM
from test_webhooks import messages
from webhook_receiver import Receiver, webhook_endpoint

AUDIENCE = "api://cadenya"


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
        for issuer in ("https://\u00deJx\u00ad", "https://a@idp.example", "https://[zz"):
            body["spec"]["issuer"] = issuer
            refused = http.post("/v1/account/sso_connections", json=body)
            assert refused.status_code == 400, (issuer, refused.text)
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
    receiver = Receiver().start()
    with browser(server) as client:
        webhook_endpoint(server, tenant, receiver.url, eventTypes=["profile.updated"])
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
    # The same events as an administrator's PATCH of the role would send.
    updated = [m["data"] for m in messages(server, tenant) if m["type"] == "profile.updated"]
    assert [(d["metadata"]["id"], d["spec"]["role"]) for d in updated] == [
        (me["metadata"]["id"], "admin"),
        (me["metadata"]["id"], "member"),
    ]
    receiver.stop()


# --- ID token attacks ----------------------------------------------------------------------

CLIENT_ID = "cadenya-client"
Token = Callable[[dict[str, str]], str]


def _forge_connection(
    server: Server, tenant: Tenant, forge: ForgingProvider, domain: str, **spec: Any
) -> str:
    return connect(server, tenant, forge.issuer, domain, createProfiles=True, **spec)["metadata"][
        "id"
    ]


def id_token(forge: ForgingProvider, sub: str, email: str) -> Token:
    """An honest ID token for the sign-in under way (its nonce comes with the request)."""
    return lambda request: forge.sign(
        forge.claims(
            audience=CLIENT_ID, sub=sub, nonce=request["nonce"], email=email, email_verified=True
        )
    )


def forged_sign_in(
    server: Server,
    forge: ForgingProvider,
    connection_id: str,
    token: Token,
    client: httpx.Client | None = None,
) -> httpx.Response:
    """A sign-in whose token endpoint answers with `token(the authorization request)`."""
    with browser(server) as own:
        used = client or own
        request = forge.start(used, server.base_url, connection_id)
        forge.next_id_token = token(request)
        return forge.callback(used, server.base_url, state=request["state"])


def _compact(header: dict, claims: dict, sign: Callable[[bytes], bytes] | None = None) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    signing_input = f"{part(header)}.{part(claims)}"
    signature = sign(signing_input.encode()) if sign else b""
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def hs256_with_public_key(forge: ForgingProvider, claims: dict) -> str:
    """The classic forgery: an HMAC keyed with the IdP's public key (PEM), for a verifier
    that lets the header pick the algorithm."""
    public_pem = forge.key.as_pem(private=False)
    return _compact(
        {"alg": "HS256", "kid": "forge-1"},
        claims,
        lambda data: hmac.new(public_pem, data, hashlib.sha256).digest(),
    )


def alg_none(forge: ForgingProvider, claims: dict) -> str:
    return _compact({"alg": "none", "kid": "forge-1"}, claims)


def _without(claims: dict, name: str) -> dict:
    return {k: v for k, v in claims.items() if k != name}


# Each turns the honest claims of a sign-in (and the nonce of an earlier one) into a token.
ATTACKS: dict[str, Callable[[ForgingProvider, dict, str], str]] = {
    "wrong aud": lambda f, c, _: f.sign({**c, "aud": "someone-else"}),
    "aud list without this client": lambda f, c, _: f.sign({**c, "aud": ["a", "b"]}),
    "wrong iss": lambda f, c, _: f.sign({**c, "iss": "https://evil.example"}),
    "expired": lambda f, c, _: f.sign({**c, "exp": 1_000_000_000}),
    "no exp": lambda f, c, _: f.sign(_without(c, "exp")),
    "nonce replayed from an earlier sign-in": lambda f, c, earlier: f.sign({**c, "nonce": earlier}),
    "no nonce": lambda f, c, _: f.sign(_without(c, "nonce")),
    "alg none": lambda f, c, _: alg_none(f, c),
    "HS256 with the public key": lambda f, c, _: hs256_with_public_key(f, c),
    "unknown kid": lambda f, c, _: f.sign(c, header={"alg": "RS256", "kid": "not-a-key"}),
    "signed by another key": lambda f, c, _: jose_jwt.encode(
        {"alg": "RS256", "kid": "forge-1"}, c, RSAKey.generate_key(2048)
    ),
    "email_verified false": lambda f, c, _: f.sign({**c, "email_verified": False}),
    "email_verified missing": lambda f, c, _: f.sign(_without(c, "email_verified")),
    "email_verified as a string": lambda f, c, _: f.sign({**c, "email_verified": "true"}),
    "email outside the allowed domains": lambda f, c, _: f.sign(
        {**c, "email": "a@elsewhere.example"}
    ),
}


@pytest.fixture(scope="module")
def forged_account(server: Server, forge: ForgingProvider) -> tuple[str, str]:
    tenant = make_account(server, name="Forged", domain="forged.io")
    domain = new_domain()
    return domain, _forge_connection(server, tenant, forge, domain)


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_each_id_token_attack_is_refused(
    server: Server, forge: ForgingProvider, forged_account: tuple[str, str], attack: str
) -> None:
    domain, connection_id = forged_account
    sub = random_sub()
    with browser(server) as client:
        earlier = forge.start(client, server.base_url, connection_id)["nonce"]
    honest = id_token(forge, sub, f"{sub}@{domain}")

    def forged(request: dict[str, str]) -> str:
        claims = jose_jwt.decode(honest(request), forge.key).claims
        return ATTACKS[attack](forge, claims, earlier)

    response = forged_sign_in(server, forge, connection_id, forged)
    assert response.status_code in (401, 403), (attack, response.text)
    assert "cadenya_session=" not in response.headers.get("set-cookie", "")
    # The same person with an honest token signs in: the refusal was the attack's.
    assert forged_sign_in(server, forge, connection_id, honest).status_code == 303


def test_state_missing_reused_or_from_another_browser_is_refused(
    server: Server, forge: ForgingProvider, forged_account: tuple[str, str]
) -> None:
    domain, connection_id = forged_account
    sub = random_sub()
    with browser(server) as client:
        request = forge.start(client, server.base_url, connection_id)
        forge.next_id_token = id_token(forge, sub, f"{sub}@{domain}")(request)
        assert client.get("/auth/sso/callback", params={"code": "c"}).status_code == 401
        with browser(server) as other:
            # The callback URL carried to another browser (login CSRF).
            assert forge.callback(other, server.base_url, state=request["state"]).status_code == 401
        assert forge.callback(client, server.base_url, state=request["state"]).status_code == 303
        assert forge.callback(client, server.base_url, state=request["state"]).status_code == 401


def test_the_key_set_is_read_once_and_unknown_kids_do_not_hammer_the_provider(
    server: Server, account: Tenant
) -> None:
    with ForgingProvider() as own:
        domain = new_domain()
        connection_id = _forge_connection(
            server, account, own, domain, acceptBearerTokens=True, audience="api://keys"
        )
        sub = random_sub()
        for _ in range(3):
            signed_in = forged_sign_in(
                server, own, connection_id, id_token(own, sub, f"k@{domain}")
            )
            assert signed_in.status_code == 303
        with server.http(access_token(own, "api://keys", sub)) as http:
            assert all(http.get("/v1/whoami").status_code == 200 for _ in range(5))
        assert own.key_set_reads == 1
        for n in range(10):
            forged = own.sign(
                own.claims(audience="api://keys", sub=sub), header={"alg": "RS256", "kid": f"k{n}"}
            )
            with server.http(forged) as http:
                assert http.get("/v1/whoami").status_code == 401
        # Read again at most once a minute, however many unknown kids arrive.
        assert own.key_set_reads == 1


# --- IdP access tokens on the API ----------------------------------------------------------


def access_token(forge: ForgingProvider, audience: str, sub: str, **claims: Any) -> str:
    return forge.sign({**forge.claims(audience=audience, sub=sub), **claims})


def test_idp_access_tokens_call_the_api_for_the_linked_profile_only(
    server: Server, forge: ForgingProvider
) -> None:
    tenant = make_account(server, name="Tokens", domain="tokens.io")
    domain = new_domain()
    connection_id = _forge_connection(
        server, tenant, forge, domain, acceptBearerTokens=True, audience=AUDIENCE
    )
    sub = random_sub()
    token = access_token(forge, AUDIENCE, sub)
    with server.http(token) as http:
        # Not signed in here yet: the token names no profile.
        assert http.get("/v1/whoami").status_code == 401
    signed_in = forged_sign_in(server, forge, connection_id, id_token(forge, sub, f"t@{domain}"))
    assert signed_in.status_code == 303
    with server.http(token) as http:
        me = http.get("/v1/whoami")
        assert me.status_code == 200, me.text
        assert me.json()["profile"]["spec"]["email"] == f"t@{domain}"
        # A member: administration stays closed.
        assert http.get("/v1/account/profiles").status_code == 403
    refused = {
        "other audience": access_token(forge, "api://other", sub),
        "expired": access_token(forge, AUDIENCE, sub, exp=1_000_000_000),
        "alg none": alg_none(forge, forge.claims(audience=AUDIENCE, sub=sub)),
        "HS256": hs256_with_public_key(forge, forge.claims(audience=AUDIENCE, sub=sub)),
        "unknown kid": forge.sign(
            forge.claims(audience=AUDIENCE, sub=sub), header={"alg": "RS256", "kid": "nope"}
        ),
        "another subject": access_token(forge, AUDIENCE, sub + "x"),
        "another issuer": access_token(forge, AUDIENCE, sub, iss="https://evil.example"),
    }
    for name, bad in refused.items():
        with server.http(bad) as http:
            assert http.get("/v1/whoami").status_code == 401, name
    # Once the connection stops accepting tokens, the same token is refused.
    with server.http(tenant.api_key) as http:
        off = {"spec": {"acceptBearerTokens": False}, "updateMask": "spec.acceptBearerTokens"}
        assert http.patch(f"/v1/account/sso_connections/{connection_id}", json=off).is_success
    with server.http(token) as http:
        assert http.get("/v1/whoami").status_code == 401


def test_tenant_isolation_of_connections_sessions_and_tokens(
    server: Server, forge: ForgingProvider
) -> None:
    first = make_account(server, name="First", domain="first.io")
    second = make_account(server, name="Second", domain="second.io")
    first_domain, second_domain = new_domain(), new_domain()
    first_connection = _forge_connection(
        server, first, forge, first_domain, acceptBearerTokens=True, audience="api://first"
    )
    second_connection = _forge_connection(
        server, second, forge, second_domain, acceptBearerTokens=True, audience="api://second"
    )
    with server.http(first.api_key) as http:
        # One issuer and audience belong to one account.
        clash = http.patch(
            f"/v1/account/sso_connections/{first_connection}",
            json={"spec": {"audience": "api://second"}},
        )
        assert clash.status_code == 409
    sub = random_sub()
    email = f"i@{first_domain}"
    # The person signs in to the first account; the first account's domain is not the
    # second connection's, whatever the IdP says.
    ok = forged_sign_in(server, forge, first_connection, id_token(forge, sub, email))
    assert ok.status_code == 303
    crossed = forged_sign_in(server, forge, second_connection, id_token(forge, sub, email))
    assert crossed.status_code == 403
    with server.http(access_token(forge, "api://first", sub)) as http:
        answer = http.get("/v1/whoami")
        assert answer.status_code == 200, answer.text
        assert answer.json()["profile"]["metadata"]["accountId"] == first.id
    with server.http(access_token(forge, "api://second", sub)) as http:
        assert http.get("/v1/whoami").status_code == 401
    # A token for both audiences names no one account.
    both = access_token(
        forge, "api://first", sub, aud=["api://first", "api://second"], azp="api://first"
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
    )
    sub = random_sub()
    with browser(server) as client:
        signed_in = forged_sign_in(
            server, forge, connection_id, id_token(forge, sub, f"l@{domain}"), client=client
        )
        assert signed_in.status_code == 303
        profile_id = client.get("/auth/session").json()["profile"]["metadata"]["id"]
        session = client.cookies["cadenya_session"]
    credentials = {
        "session cookie": ({}, {"cadenya_session": session}),
        "IdP token": ({"Authorization": f"Bearer {access_token(forge, 'api://leavers', sub)}"}, {}),
        "server's JWT": ({"Authorization": f"Bearer {jwt_for(server, profile_id, tenant.id)}"}, {}),
    }

    def answers(base_url: str) -> dict[str, int]:
        found = {}
        for name, (headers, cookies) in credentials.items():
            with httpx.Client(base_url=base_url, cookies=cookies, timeout=30) as http:
                found[name] = http.get("/v1/whoami", headers=headers).status_code
        return found

    everyone = dict.fromkeys(credentials, 200)
    nobody = dict.fromkeys(credentials, 401)
    with server_with(server) as second:
        assert answers(server.base_url) == answers(second) == everyone
        with server.http(tenant.api_key) as admin:
            assert admin.delete(f"/v1/account/profiles/{profile_id}").status_code == 200
        assert answers(second) == answers(server.base_url) == nobody
    with server.runtime.db.transaction() as db:
        rows = db.scalars(select(BrowserSession).where(BrowserSession.profile_id == profile_id))
        assert rows.all() == []


def test_a_session_has_a_request_budget_as_a_token_does(
    server: Server, forge: ForgingProvider, forged_account: tuple[str, str]
) -> None:
    domain, connection_id = forged_account
    sub = random_sub()
    with browser(server) as client:
        token = id_token(forge, sub, f"{sub}@{domain}")
        signed_in = forged_sign_in(server, forge, connection_id, token, client=client)
        assert signed_in.status_code == 303
        cookies = {"cadenya_session": client.cookies["cadenya_session"]}
    with (
        server_with(server, rate_limit_per_credential="3/minute") as limited,
        httpx.Client(base_url=limited, cookies=cookies, timeout=30) as http,
    ):
        answers = [http.get("/v1/whoami").status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]


def test_an_expired_session_or_sign_in_is_refused(
    server: Server, forge: ForgingProvider, forged_account: tuple[str, str]
) -> None:
    domain, connection_id = forged_account
    sub = random_sub()
    past = datetime.now(UTC) - timedelta(seconds=1)
    with browser(server) as client:
        request = forge.start(client, server.base_url, connection_id)
        forge.next_id_token = id_token(forge, sub, f"{sub}@{domain}")(request)
        with server.runtime.db.transaction() as db:
            db.execute(
                update(SsoLogin)
                .where(SsoLogin.connection_id == connection_id)
                .values(expires_at=past)
            )
        assert forge.callback(client, server.base_url, state=request["state"]).status_code == 401
        token = id_token(forge, sub, f"{sub}@{domain}")
        assert forged_sign_in(server, forge, connection_id, token, client=client).status_code == 303
        me = client.get("/v1/whoami")
        assert me.status_code == 200
        profile_id = me.json()["profile"]["metadata"]["id"]
        with server.runtime.db.transaction() as db:
            db.execute(
                update(BrowserSession)
                .where(BrowserSession.profile_id == profile_id)
                .values(expires_at=past)
            )
        assert client.get("/v1/whoami").status_code == 401
        assert client.get("/auth/session").status_code == 401
