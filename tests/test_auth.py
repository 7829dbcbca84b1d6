"""Authentication and authorization through a live server: the OWASP ASVS 5.0 V9 JWT
attack list, API key states, the Authorization header, tenant isolation and roles."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from http.client import HTTPConnection
from typing import Any

import httpx
import jwt
import pytest
from cadenya import APIError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cadenya_server.api_keys import service as api_keys
from cadenya_server.auth import api_key_tokens
from cadenya_server.kit.clock import now
from cadenya_server.models import ApiKey, Profile
from conftest import Server, Tenant, cli, jwt_for, make_account, make_profile

ISSUER = "cadenya-server"
AUDIENCE = "cadenya-api"
DROP = object()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def assert_unauthenticated(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    body = response.json()
    assert set(body) == {"code", "message", "details"}
    assert body["code"] == 16
    assert body["details"] == []
    assert isinstance(body["message"], str) and body["message"]
    assert response.headers["www-authenticate"].lower().startswith("bearer")


def assert_denied(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    body = response.json()
    assert set(body) == {"code", "message", "details"}
    assert body["code"] == 7


def whoami(server: Server, token: str) -> httpx.Response:
    with server.http(token) as http:
        return http.get("/v1/whoami")


@pytest.fixture(scope="module")
def victim(server: Server) -> Tenant:
    return make_account(server, name="Victim", domain="victim.io")


@pytest.fixture(scope="module")
def published_jwk(server: Server) -> dict[str, str]:
    with server.http() as http:
        (key,) = http.get("/.well-known/jwks.json").json()["keys"]
    return key


@dataclass
class Forge:
    """What an attacker (or a test) needs to build tokens against the victim."""

    server: Server
    victim: Tenant
    jwk: dict[str, str]

    def claims(self, **changes: Any) -> dict[str, Any]:
        """Valid claims for the victim's admin, with `changes` (DROP removes a claim)."""
        issued = int(time.time())
        claims: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": self.victim.admin_profile_id,
            "account_id": self.victim.id,
            "iat": issued,
            "nbf": issued,
            "exp": issued + 600,
            "jti": secrets.token_urlsafe(16),
        }
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not DROP}

    def ours(self, claims: dict[str, Any], **headers: Any) -> str:
        """Signed with the server's real key: only the claims or the header can be at fault."""
        return jwt.encode(
            claims,
            self.server.runtime.keyring.jwt_private_key,
            algorithm="EdDSA",
            headers={"kid": self.jwk["kid"], "typ": "JWT", **headers},
        )

    def our_signature(self, data: bytes) -> bytes:
        return self.server.runtime.keyring.jwt_private_key.sign(data)

    @staticmethod
    def raw(header: dict[str, Any], claims: dict[str, Any], sign: Callable[[bytes], bytes]) -> str:
        """A compact JWS assembled by hand, for headers PyJWT refuses to produce."""
        signing_input = (
            f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
        )
        return f"{signing_input}.{b64url(sign(signing_input.encode()))}"

    def hs256(self, secret: bytes, **headers: Any) -> str:
        header = {"alg": "HS256", "typ": "JWT", "kid": self.jwk["kid"], **headers}
        return self.raw(
            header, self.claims(), lambda data: hmac.new(secret, data, hashlib.sha256).digest()
        )


@pytest.fixture(scope="module")
def forge(server: Server, victim: Tenant, published_jwk: dict[str, str]) -> Forge:
    return Forge(server, victim, published_jwk)


ATTACKER_ED = Ed25519PrivateKey.generate()
ATTACKER_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ATTACKER_EC = ec.generate_private_key(ec.SECP256R1())
ATTACKER_JWK = {
    "kty": "OKP",
    "crv": "Ed25519",
    "x": b64url(ATTACKER_ED.public_key().public_bytes_raw()),
}


def attacker(f: Forge, key: Any, alg: str, **headers: Any) -> str:
    return jwt.encode(f.claims(), key, algorithm=alg, headers={"typ": "JWT", **headers})


def server_public_key(f: Forge) -> Any:
    return f.server.runtime.keyring.jwt_public_key


def pem(f: Forge) -> bytes:
    return server_public_key(f).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def tampered(f: Forge) -> str:
    other = make_profile(f.server, f.victim.id, name="Tampered Target", role="admin")
    header, _, signature = f.ours(f.claims()).split(".")
    payload = b64url(json.dumps(f.claims(sub=other)).encode())
    return f"{header}.{payload}.{signature}"


def other_account(f: Forge) -> str:
    elsewhere = make_account(f.server, name="Elsewhere", domain="elsewhere.io")
    return f.ours(f.claims(account_id=elsewhere.id))


def api_key_profile(f: Forge) -> str:
    with f.server.runtime.db.transaction(write=False) as session:
        profile_id = session.get(ApiKey, f.victim.api_key_id).profile_id
    return f.ours(f.claims(sub=profile_id))


ATTACKS: list[Any] = [
    pytest.param(
        lambda f: f.raw({"alg": "none", "typ": "JWT"}, f.claims(), lambda _: b""), id="alg-none"
    ),
    pytest.param(
        lambda f: f.raw({"alg": "nOnE", "kid": f.jwk["kid"]}, f.claims(), lambda _: b""),
        id="alg-none-mixed-case",
    ),
    pytest.param(
        lambda f: f.raw({"alg": "none", "kid": f.jwk["kid"]}, f.claims(), lambda _: b"sig"),
        id="alg-none-with-signature",
    ),
    pytest.param(
        lambda f: f.hs256(server_public_key(f).public_bytes_raw()), id="hs256-public-key-bytes"
    ),
    pytest.param(lambda f: f.hs256(pem(f)), id="hs256-public-key-pem"),
    pytest.param(lambda f: f.hs256(f.jwk["x"].encode()), id="hs256-jwk-x"),
    pytest.param(lambda f: f.hs256(json.dumps(f.jwk).encode()), id="hs256-whole-jwk"),
    pytest.param(lambda f: attacker(f, ATTACKER_RSA, "RS256"), id="rs256-attacker-key"),
    pytest.param(
        lambda f: attacker(f, ATTACKER_RSA, "RS256", kid=f.jwk["kid"]),
        id="rs256-attacker-key-our-kid",
    ),
    pytest.param(
        lambda f: attacker(f, ATTACKER_EC, "ES256", kid=f.jwk["kid"]), id="es256-attacker-key"
    ),
    pytest.param(
        lambda f: attacker(f, ATTACKER_ED, "EdDSA", kid=f.jwk["kid"]),
        id="eddsa-attacker-key-our-kid",
    ),
    pytest.param(lambda f: attacker(f, ATTACKER_ED, "EdDSA"), id="eddsa-no-kid"),
    # Signed with our real key: only the kid lookup can refuse it.
    pytest.param(
        lambda f: f.ours(f.claims(), kid="some-other-key"), id="unknown-kid-our-signature"
    ),
    pytest.param(
        lambda f: attacker(f, ATTACKER_ED, "EdDSA", kid="../../etc/passwd"), id="kid-path"
    ),
    # The classic: kid names an empty file, so the HMAC secret is empty.
    pytest.param(lambda f: f.hs256(b"", kid="/dev/null"), id="kid-dev-null-empty-hmac"),
    pytest.param(
        lambda f: attacker(f, ATTACKER_ED, "EdDSA", kid="https://attacker.example/jwks.json"),
        id="kid-url",
    ),
    pytest.param(lambda f: attacker(f, ATTACKER_ED, "EdDSA", jwk=ATTACKER_JWK), id="embedded-jwk"),
    pytest.param(
        lambda f: attacker(f, ATTACKER_ED, "EdDSA", kid=f.jwk["kid"], jwk=ATTACKER_JWK),
        id="embedded-jwk-our-kid",
    ),
    pytest.param(
        lambda f: attacker(
            f, ATTACKER_ED, "EdDSA", kid=f.jwk["kid"], jku="https://attacker.example/jwks.json"
        ),
        id="jku",
    ),
    pytest.param(
        lambda f: attacker(
            f, ATTACKER_ED, "EdDSA", kid=f.jwk["kid"], x5u="https://attacker.example/cert.pem"
        ),
        id="x5u",
    ),
    pytest.param(lambda f: f.ours(f.claims(exp=int(time.time()) - 120)), id="expired"),
    pytest.param(lambda f: f.ours(f.claims(nbf=int(time.time()) + 600)), id="nbf-in-future"),
    pytest.param(lambda f: f.ours(f.claims(iat=DROP)), id="iat-missing"),
    pytest.param(lambda f: f.ours(f.claims(exp=DROP)), id="exp-missing"),
    pytest.param(lambda f: f.ours(f.claims(iss="https://evil.example")), id="wrong-iss"),
    pytest.param(lambda f: f.ours(f.claims(aud="another-api")), id="wrong-aud"),
    pytest.param(lambda f: f.ours(f.claims(sub=DROP)), id="sub-missing"),
    pytest.param(lambda f: f.ours(f.claims(jti=DROP)), id="jti-missing"),
    pytest.param(lambda f: f.ours(f.claims(account_id=DROP)), id="account-id-missing"),
    pytest.param(lambda f: f.ours(f.claims(account_id="")), id="account-id-empty"),
    pytest.param(lambda f: f.ours(f.claims(sub="profile_nobody")), id="unknown-profile"),
    pytest.param(tampered, id="tampered-payload"),
    pytest.param(other_account, id="account-id-of-another-account"),
    pytest.param(api_key_profile, id="api-key-profile"),
    # Header values of the wrong JSON type must be refused, not crash the server.
    pytest.param(lambda f: f.ours(f.claims(), typ=["JWT"]), id="typ-list"),
    pytest.param(lambda f: f.ours(f.claims(), typ={"a": 1}), id="typ-object"),
    pytest.param(
        lambda f: f.raw({"alg": "EdDSA", "kid": [f.jwk["kid"]]}, f.claims(), f.our_signature),
        id="kid-list",
    ),
    pytest.param(lambda f: f.ours(f.claims(), typ="dpop+jwt"), id="typ-foreign"),
    pytest.param(lambda f: f.ours(f.claims(), crit=["exp"]), id="crit"),
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_forged_and_invalid_jwts_are_refused(
    server: Server, forge: Forge, attack: Callable[[Forge], str]
) -> None:
    assert_unauthenticated(whoami(server, attack(forge)))


def test_the_forge_makes_accepted_tokens_with_our_key(server: Server, forge: Forge) -> None:
    """Control for the list above: only what each attack changes makes it fail."""
    response = whoami(server, forge.ours(forge.claims()))
    assert response.status_code == 200, response.text
    assert response.json()["profile"]["metadata"]["id"] == forge.victim.admin_profile_id
    # Clock skew within the leeway is tolerated.
    skewed = forge.claims(exp=int(time.time()) - 5, nbf=int(time.time()) + 5)
    assert whoami(server, forge.ours(skewed)).status_code == 200
    header = {"alg": "EdDSA", "kid": forge.jwk["kid"]}
    by_hand = forge.raw(header, forge.claims(), forge.our_signature)
    assert whoami(server, by_hand).status_code == 200


@pytest.mark.parametrize(
    "garbage",
    [
        "garbage",
        "a.b.c",
        "....",
        "e30.e30.",
        "W10.e30.x",
        "eyJhbGciOiJFZERTQSJ9",
        "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0",
        "!!!.???.***",
        "x" * 4000,
        "cdy_",
    ],
)
def test_garbage_tokens_are_refused(server: Server, garbage: str) -> None:
    assert_unauthenticated(whoami(server, garbage))


def test_a_token_of_a_deleted_profile_stops_working(server: Server, victim: Tenant) -> None:
    profile_id = make_profile(server, victim.id, name="Short Lived", email="short@victim.io")
    token = jwt_for(server, profile_id, victim.id)
    assert whoami(server, token).status_code == 200
    with server.runtime.db.transaction() as session:
        session.delete(session.get(Profile, profile_id))
    assert_unauthenticated(whoami(server, token))


def test_a_cli_token_works_with_the_official_client_and_the_published_key(
    server: Server, victim: Tenant, published_jwk: dict[str, str], forge: Forge
) -> None:
    token = cli(server.env, "token", "--profile", victim.admin_profile_id).stdout.strip()
    me = server.client(token).profiles.whoami()
    assert me.profile.metadata.id == victim.admin_profile_id
    assert me.profile.metadata.account_id == victim.id

    assert published_jwk["kty"] == "OKP" and published_jwk["crv"] == "Ed25519"
    assert set(published_jwk) >= {"kty", "crv", "x", "kid"}
    assert "d" not in published_jwk
    assert jwt.get_unverified_header(token)["kid"] == published_jwk["kid"]
    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"
    claims = jwt.decode(
        token, jwt.PyJWK(published_jwk).key, algorithms=["EdDSA"], audience=AUDIENCE
    )
    assert claims["sub"] == victim.admin_profile_id
    assert claims["account_id"] == victim.id
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(
            attacker(forge, ATTACKER_ED, "EdDSA"),
            jwt.PyJWK(published_jwk).key,
            algorithms=["EdDSA"],
            audience=AUDIENCE,
        )


# API keys


def issue_key(server: Server, tenant: Tenant, permissions: list[str]) -> tuple[str, str]:
    """A new API key of `tenant` with these scopes: its token and id."""
    with server.runtime.db.transaction() as session:
        issued = api_keys.issue(
            session=session,
            keyring=server.runtime.keyring,
            account_id=tenant.id,
            name=f"key {secrets.token_hex(3)}",
            permissions=permissions,
            creator_profile_id=tenant.admin_profile_id,
        )
        return issued.token, issued.key.id


def flip_last(text: str) -> str:
    return text[:-1] + ("A" if text[-1] != "A" else "B")


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda _key: api_key_tokens.generate(), id="never-issued"),
        pytest.param(flip_last, id="bad-checksum"),
        pytest.param(lambda key: key[:-1], id="too-short"),
        pytest.param(lambda key: key + "A", id="too-long"),
        pytest.param(lambda key: "cdx_" + key[4:], id="wrong-prefix"),
        pytest.param(lambda key: key[4:], id="no-prefix"),
        pytest.param(lambda key: key.upper(), id="case-changed"),
    ],
)
def test_unknown_and_malformed_api_keys_are_refused(
    server: Server, victim: Tenant, make_token: Callable[[str], str]
) -> None:
    token = make_token(victim.api_key)
    assert token != victim.api_key
    assert_unauthenticated(whoami(server, token))


def test_a_disabled_api_key_is_refused(server: Server, victim: Tenant) -> None:
    token, key_id = issue_key(server, victim, ["*"])
    assert whoami(server, token).status_code == 200
    with server.runtime.db.transaction() as session:
        session.get(ApiKey, key_id).enabled = False
    assert_unauthenticated(whoami(server, token))


def test_an_expired_api_key_is_refused(server: Server, victim: Tenant) -> None:
    token, key_id = issue_key(server, victim, ["*"])
    with server.runtime.db.transaction() as session:
        session.get(ApiKey, key_id).expires_at = now() + timedelta(hours=1)
    assert whoami(server, token).status_code == 200
    with server.runtime.db.transaction() as session:
        session.get(ApiKey, key_id).expires_at = now() - timedelta(seconds=1)
    assert_unauthenticated(whoami(server, token))


# The Authorization header


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-header"),
        pytest.param({"Authorization": ""}, id="empty"),
        pytest.param({"Authorization": "Basic dXNlcjpwYXNzd29yZA=="}, id="basic"),
        pytest.param({"Authorization": "Bearer"}, id="bearer-no-token"),
        pytest.param({"Authorization": "Bearer "}, id="bearer-empty-token"),
        pytest.param({"Authorization": "Bearer    "}, id="bearer-blank-token"),
        pytest.param({"Authorization": "Token abc"}, id="other-scheme"),
    ],
)
def test_missing_or_foreign_authorization_is_refused(
    server: Server, headers: dict[str, str]
) -> None:
    for path in ("/v1/whoami", "/v1/account", "/v1/account/profiles"):
        assert_unauthenticated(send_verbatim(server, path, headers))


def send_verbatim(server: Server, path: str, headers: dict[str, str]) -> httpx.Response:
    """A GET whose headers reach the socket as written (httpx refuses trailing blanks)."""
    url = httpx.URL(server.base_url)
    connection = HTTPConnection(url.host, url.port, timeout=30)
    try:
        connection.request("GET", path, headers=headers)
        reply = connection.getresponse()
        return httpx.Response(reply.status, headers=reply.getheaders(), content=reply.read())
    finally:
        connection.close()


def test_a_key_in_basic_credentials_is_not_accepted(server: Server, victim: Tenant) -> None:
    basic = base64.b64encode(f"{victim.api_key}:".encode()).decode()
    with server.http() as http:
        assert_unauthenticated(http.get("/v1/whoami", headers={"Authorization": f"Basic {basic}"}))


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer"])
def test_the_bearer_scheme_is_case_insensitive(server: Server, victim: Tenant, scheme: str) -> None:
    with server.http() as http:
        response = http.get("/v1/whoami", headers={"Authorization": f"{scheme} {victim.api_key}"})
    assert response.status_code == 200, response.text
    assert response.json()["profile"]["metadata"]["accountId"] == victim.id


# Tenant isolation


def test_an_account_never_sees_another_accounts_profiles_or_account(server: Server) -> None:
    a = make_account(server, name="Alpha", domain="alpha.io")
    b = make_account(server, name="Beta", domain="beta.io")
    marker = secrets.token_hex(6)
    a_names = [f"Alpha Secret {marker} {i}" for i in range(3)]
    a_ids = {
        make_profile(server, a.id, name=name, email=f"alpha-{marker}-{i}@alpha.io")
        for i, name in enumerate(a_names)
    }
    make_profile(server, b.id, name="Beta Person", email="person@beta.io")

    a_client, b_client = server.client(a.api_key), server.client(b.api_key)
    # Control: the searches below do find A's profiles for A.
    assert {p.metadata.id for p in a_client.workspace_admin.list_profiles(query=marker)} == a_ids

    for query in (marker, a_names[0], f"alpha-{marker}-0@alpha.io", "alpha.io", "Alpha"):
        page = b_client.workspace_admin.list_profiles(query=query)
        assert page.items == [], query
    with server.http(b.api_key) as http:
        body = http.get("/v1/account/profiles", params={"query": marker}).json()
        assert body == {"items": [], "pagination": {"nextCursor": "", "total": 0}}
        everything = http.get("/v1/account/profiles", params={"limit": 1000}).json()
    seen = {p["metadata"]["id"] for p in everything["items"]}
    assert seen and not seen & a_ids
    assert {p["metadata"]["accountId"] for p in everything["items"]} == {b.id}

    account = b_client.accounts.retrieve()
    assert account.metadata.id == b.id
    assert {w.metadata.id for w in account.spec.workspaces} == {b.workspace_id}
    # Nothing in the request can name another account.
    with server.http(b.api_key) as http:
        named = http.get("/v1/account", params={"accountId": a.id, "account_id": a.id})
        assert named.json()["metadata"]["id"] == b.id
        named = http.get("/v1/account", headers={"X-Account-Id": a.id})
        assert named.json()["metadata"]["id"] == b.id


def test_a_cursor_of_one_account_is_refused_in_another(server: Server) -> None:
    a = make_account(server, name="Alpha", domain="alpha.io")
    b = make_account(server, name="Beta", domain="beta.io")
    for i in range(3):
        make_profile(server, a.id, name=f"Shared Name {i}")
        make_profile(server, b.id, name=f"Shared Name {i}")
    params = {"query": "shared name", "limit": 1}
    with server.http(a.api_key) as http:
        cursor = http.get("/v1/account/profiles", params=params).json()["pagination"]["nextCursor"]
        assert cursor
        # Control: the cursor is good in the account that got it.
        assert (
            http.get("/v1/account/profiles", params={**params, "cursor": cursor}).status_code == 200
        )
    with server.http(b.api_key) as http:
        response = http.get("/v1/account/profiles", params={**params, "cursor": cursor})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == 3
    assert body["details"][0]["fieldViolations"][0]["field"] == "cursor"


# Roles and scopes

ROTATIONS = (
    "/v1/account:rotateWebhookSigningKey",
    "/v1/account/rotate_webhook_signing_key",
    "/v1/account:rotateChallengeToken",
)


def test_a_member_is_denied_administration(server: Server, victim: Tenant) -> None:
    member = make_profile(
        server, victim.id, name="Mo Member", email=f"mo-{secrets.token_hex(3)}@victim.io"
    )
    token = jwt_for(server, member, victim.id)
    client = server.client(token)

    assert client.profiles.whoami().profile.metadata.id == member
    with pytest.raises(APIError) as refused:
        client.workspace_admin.list_profiles()
    assert (refused.value.status_code, refused.value.code) == (403, 7)
    for rotate in (
        client.accounts.rotate_webhook_signing_key,
        client.accounts.rotate_challenge_token,
    ):
        with pytest.raises(APIError) as refused:
            rotate()
        assert (refused.value.status_code, refused.value.code) == (403, 7)
    with server.http(token) as http:
        for path in ROTATIONS:
            assert_denied(http.post(path))

    account = client.accounts.retrieve()
    assert account.metadata.id == victim.id
    assert account.info.webhook_events_hmac_secret == ""
    # The refusals changed nothing.
    admin_view = server.client(victim.api_key).accounts.retrieve()
    assert admin_view.info.webhook_events_hmac_secret.startswith("whsec_")


def test_an_admin_user_may_administer(server: Server, victim: Tenant) -> None:
    token = jwt_for(server, victim.admin_profile_id, victim.id)
    client = server.client(token)
    assert client.workspace_admin.list_profiles().items
    assert client.accounts.retrieve().info.webhook_events_hmac_secret.startswith("whsec_")


def test_an_api_key_without_scopes_reaches_only_whoami(server: Server, victim: Tenant) -> None:
    token, _ = issue_key(server, victim, [])
    client = server.client(token)
    assert client.profiles.whoami().profile.spec.type == "PROFILE_TYPE_API_KEY"
    with pytest.raises(APIError) as refused:
        client.workspace_admin.list_profiles()
    assert (refused.value.status_code, refused.value.code) == (403, 7)
    with server.http(token) as http:
        for path in ROTATIONS:
            assert_denied(http.post(path))


@pytest.mark.parametrize("scopes", [["workspaces:manage"], ["api_keys:manage", "agents:read"]])
def test_unrelated_scopes_do_not_grant_administration(
    server: Server, victim: Tenant, scopes: list[str]
) -> None:
    token, _ = issue_key(server, victim, scopes)
    with server.http(token) as http:
        assert_denied(http.get("/v1/account/profiles"))
        for path in ROTATIONS:
            assert_denied(http.post(path))


@pytest.mark.parametrize("scopes", [["account:manage"], ["*"]])
def test_an_api_key_with_account_manage_may_search(
    server: Server, victim: Tenant, scopes: list[str]
) -> None:
    token, _ = issue_key(server, victim, scopes)
    client = server.client(token)
    ids = {p.metadata.id for p in client.workspace_admin.list_profiles(limit=1000)}
    assert victim.admin_profile_id in ids
    assert client.accounts.rotate_challenge_token().challenge_token
