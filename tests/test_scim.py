"""SCIM 2.0 at /scim/v2: scim2-tester against the live server, the request sequences Okta
and Entra ID send, deprovisioning (also through a second server process), tenant isolation,
and that every change is audited and emits the API's webhook events."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import httpx2
import pytest
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server
from sqlalchemy import select

from cadenya_server.models import WebhookEndpoint, WebhookMessage
from conftest import Server, Tenant, jwt_for, make_account, make_api_key
from helpers import server_with

SCIM = "application/scim+json"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"

# scim2-tester's checks that do not apply here, by (check, resource type, what it names):
# a Group member's `display` is the member's name as this server knows it (derived from
# the User, as Okta and Entra ID read it), not a free text the client stores per member.
NOT_APPLICABLE = {
    ("check_add_attribute", "Group", "'members'"),
    ("check_replace_attribute", "Group", "'members'"),
}


def scim_http(server: Server, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{server.base_url}/scim/v2",
        headers={"Authorization": f"Bearer {token}", "Content-Type": SCIM},
        timeout=30,
    )


def scim_key(server: Server, account: Tenant) -> str:
    return make_api_key(server, account, permissions=["scim:manage"])


def email() -> str:
    return f"p{secrets.token_hex(4)}@acme.io"


def ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return response.json() if response.content else {}


def scim_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(SCIM)
    body = response.json()
    assert body["schemas"] == [ERROR] and body["status"] == str(status)
    return body


def whoami(server: Server, token: str) -> int:
    return server.http(token).get("/v1/whoami").status_code


def profile(server: Server, account: Tenant, profile_id: str) -> dict[str, Any]:
    return ok(server.http(account.api_key).get(f"/v1/account/profiles/{profile_id}"))


def members_of(server: Server, account: Tenant, workspace_id: str) -> set[str]:
    page = ok(server.http(account.api_key).get(f"/v1/account/workspaces/{workspace_id}/members"))
    return {m["profileId"] for m in page["items"]}


# --- scim2-tester -------------------------------------------------------------------------


def test_scim2_tester_passes_every_check_that_applies(server: Server) -> None:
    account = make_account(server)
    token = scim_key(server, account)
    with httpx2.Client(
        base_url=f"{server.base_url}/scim/v2", headers={"Authorization": f"Bearer {token}"}
    ) as http:
        results = check_server(SyncSCIMClient(http))
    failed = [
        f"{r.title} {r.resource_type}: {r.reason}"
        for r in results
        if r.status in (Status.ERROR, Status.CRITICAL)
        and not any(
            (r.title, r.resource_type) == (title, kind) and named in (r.reason or "")
            for title, kind, named in NOT_APPLICABLE
        )
    ]
    assert not failed, "\n".join(failed)
    passed = [r for r in results if r.status == Status.SUCCESS]
    assert len(passed) > 50, [r.title for r in results]


# --- Okta --------------------------------------------------------------------------------


def test_okta_create_deactivate_reactivate_and_groups(server: Server) -> None:
    account = make_account(server)
    address = email()
    with scim_http(server, scim_key(server, account)) as scim:
        # Okta first asks whether the person exists, then creates them.
        query = {"filter": f'userName eq "{address}"', "startIndex": "1", "count": "100"}
        assert ok(scim.get("/Users", params=query))["totalResults"] == 0
        created = ok(
            scim.post(
                "/Users",
                json={
                    "schemas": [USER],
                    "userName": address,
                    "name": {"givenName": "Grace", "familyName": "Hopper"},
                    "emails": [{"primary": True, "value": address, "type": "work"}],
                    "displayName": "Grace Hopper",
                    "locale": "en-US",
                    "externalId": "00u1okta",
                    "groups": [],
                    "password": "never-stored-1!",
                    "active": True,
                },
            ),
            201,
        )
        user_id = created["id"]
        assert created["active"] is True and "password" not in created
        found = ok(scim.get("/Users", params=query))
        assert [r["id"] for r in found["Resources"]] == [user_id]
        person = profile(server, account, user_id)
        assert person["spec"]["email"] == address
        assert person["spec"]["name"] == "Grace Hopper"
        assert person["metadata"]["externalId"] == "00u1okta"
        token = jwt_for(server, user_id, account.id)
        assert whoami(server, token) == 200

        # Deactivation: a PATCH without a path (Okta's current shape)...
        patched = ok(
            scim.patch(
                f"/Users/{user_id}",
                json={
                    "schemas": [PATCH_OP],
                    "Operations": [{"op": "replace", "value": {"active": False}}],
                },
            )
        )
        assert patched["active"] is False
        assert whoami(server, token) == 401
        assert profile(server, account, user_id)["info"]["deactivated"] is True
        # ... and the person is marked so in the profile search.
        search = ok(
            server.http(account.api_key).get("/v1/account/profiles", params={"query": address})
        )
        assert [p["info"]["deactivated"] for p in search["items"]] == [True]

        # Reactivation with a PUT of the whole user (Okta's older shape), then deactivation.
        replaced = ok(scim.put(f"/Users/{user_id}", json={**created, "active": True}))
        assert replaced["active"] is True
        assert whoami(server, token) == 200
        assert (
            ok(scim.put(f"/Users/{user_id}", json={**created, "active": False}))["active"] is False
        )
        assert whoami(server, token) == 401
        ok(scim.put(f"/Users/{user_id}", json={**created, "active": True}))

        # Groups: pushed with no members, then members added and removed by PATCH.
        group = ok(
            scim.post("/Groups", json={"schemas": [GROUP], "displayName": "Eng", "members": []}),
            201,
        )
        group_id = group["id"]
        ok(
            scim.patch(
                f"/Groups/{group_id}",
                json={
                    "schemas": [PATCH_OP],
                    "Operations": [
                        {
                            "op": "add",
                            "path": "members",
                            "value": [{"value": user_id, "display": address}],
                        }
                    ],
                },
            )
        )
        assert members_of(server, account, group_id) == {user_id}
        ok(
            scim.patch(
                f"/Groups/{group_id}",
                json={
                    "schemas": [PATCH_OP],
                    "Operations": [
                        {"op": "replace", "value": {"id": group_id, "displayName": "Engineering"}},
                        {"op": "remove", "path": f'members[value eq "{user_id}"]'},
                    ],
                },
            )
        )
        assert members_of(server, account, group_id) == set()
        workspace = ok(server.http(account.api_key).get(f"/v1/account/workspaces/{group_id}"))
        assert workspace["metadata"]["name"] == "Engineering"
        # Okta's older PUT with the whole member list.
        ok(
            scim.put(
                f"/Groups/{group_id}",
                json={
                    "schemas": [GROUP],
                    "displayName": "Engineering",
                    "members": [{"value": user_id}],
                },
            )
        )
        assert members_of(server, account, group_id) == {user_id}
        assert scim.delete(f"/Groups/{group_id}").status_code == 204
        scim_error(scim.get(f"/Groups/{group_id}"), 404)


# --- Entra ID ----------------------------------------------------------------------------


def test_entra_create_deactivate_reactivate_and_groups(server: Server) -> None:
    account = make_account(server)
    address = email()
    with scim_http(server, scim_key(server, account)) as scim:
        assert (
            ok(scim.get("/Users", params={"filter": f'userName eq "{address}"'}))["totalResults"]
            == 0
        )
        created = ok(
            scim.post(
                "/Users",
                json={
                    "schemas": [USER, ENTERPRISE],
                    "externalId": "6f1c7d1e-entra",
                    "userName": address,
                    "active": True,
                    "emails": [{"primary": True, "type": "work", "value": address}],
                    "meta": {"resourceType": "User"},
                    "name": {
                        "formatted": "Alan Turing",
                        "familyName": "Turing",
                        "givenName": "Alan",
                    },
                    "roles": [],
                    ENTERPRISE: {"department": "Research"},
                },
            ),
            201,
        )
        user_id = created["id"]
        assert created[ENTERPRISE] == {"department": "Research"}
        assert profile(server, account, user_id)["spec"]["name"] == "Alan Turing"
        by_external = ok(scim.get("/Users", params={"filter": 'externalId eq "6f1c7d1e-entra"'}))
        assert [r["id"] for r in by_external["Resources"]] == [user_id]
        token = jwt_for(server, user_id, account.id)
        assert whoami(server, token) == 200

        # Entra's capitalised ops and string booleans.
        def patch(*operations: dict[str, Any]) -> dict[str, Any]:
            return ok(
                scim.patch(
                    f"/Users/{user_id}",
                    json={"schemas": [PATCH_OP], "Operations": list(operations)},
                )
            )

        assert patch({"op": "Replace", "path": "active", "value": "False"})["active"] is False
        assert whoami(server, token) == 401
        assert patch({"op": "Replace", "path": "active", "value": "True"})["active"] is True
        assert whoami(server, token) == 200
        # A path-less value object with attribute paths as keys, and a filtered path.
        updated = patch(
            {
                "op": "Replace",
                "value": {"displayName": "A. M. Turing", "name.givenName": "Alan M."},
            },
            {"op": "Add", "path": 'emails[type eq "work"].value', "value": address},
        )
        assert updated["displayName"] == "A. M. Turing"
        assert updated["name"]["givenName"] == "Alan M."
        assert profile(server, account, user_id)["spec"]["name"] == "A. M. Turing"

        # Groups: created, found by displayName without members, membership by PATCH.
        group = ok(
            scim.post(
                "/Groups",
                json={
                    "schemas": [GROUP],
                    "externalId": "entra-group-1",
                    "displayName": "Research",
                    "members": [],
                    "meta": {"resourceType": "Group"},
                },
            ),
            201,
        )
        group_id = group["id"]
        listed = ok(
            scim.get(
                "/Groups",
                params={"excludedAttributes": "members", "filter": 'displayName eq "Research"'},
            )
        )
        assert [g["id"] for g in listed["Resources"]] == [group_id]
        assert "members" not in listed["Resources"][0]
        ok(
            scim.patch(
                f"/Groups/{group_id}",
                json={
                    "schemas": [PATCH_OP],
                    "Operations": [
                        {
                            "op": "Add",
                            "path": "members",
                            "value": [{"$ref": None, "value": user_id}],
                        }
                    ],
                },
            )
        )
        assert members_of(server, account, group_id) == {user_id}
        member_query = {
            "filter": f'id eq "{group_id}" and members[value eq "{user_id}"]',
            "excludedAttributes": "members",
        }
        assert ok(scim.get("/Groups", params=member_query))["totalResults"] == 1
        # Entra removes a member with a value, not a filter.
        ok(
            scim.patch(
                f"/Groups/{group_id}",
                json={
                    "schemas": [PATCH_OP],
                    "Operations": [
                        {
                            "op": "Remove",
                            "path": "members",
                            "value": [{"$ref": None, "value": user_id}],
                        }
                    ],
                },
            )
        )
        assert members_of(server, account, group_id) == set()
        assert ok(scim.get("/Groups", params=member_query))["totalResults"] == 0

        # Deprovisioning by deletion.
        assert scim.delete(f"/Users/{user_id}").status_code == 204
        assert whoami(server, token) == 401
        scim_error(scim.get(f"/Users/{user_id}"), 404)


# --- Deprovisioning ----------------------------------------------------------------------


def test_deprovisioning_refuses_jwts_and_issued_keys_at_once_in_every_process(
    server: Server,
) -> None:
    account = make_account(server)
    with scim_http(server, scim_key(server, account)) as scim:
        user_id = ok(
            scim.post("/Users", json={"schemas": [USER], "userName": email(), "active": True}), 201
        )["id"]
        # An administrator issues an API key; deprovisioning them stops it too.
        ok(
            server.http(account.api_key).patch(
                f"/v1/account/profiles/{user_id}", json={"spec": {"role": "admin"}}
            )
        )
        token = jwt_for(server, user_id, account.id)
        issued = ok(
            server.http(token).post(
                "/v1/account/api_keys",
                json={"metadata": {"name": "theirs"}, "spec": {"permissions": ["workspaces:read"]}},
            )
        )
        key = issued["spec"]["token"]
        with server_with(server) as second:
            for base in (server.base_url, second):
                for credential in (token, key):
                    assert (
                        httpx.get(
                            f"{base}/v1/whoami", headers={"Authorization": f"Bearer {credential}"}
                        ).status_code
                        == 200
                    )
            ok(
                scim.patch(
                    f"/Users/{user_id}",
                    json={
                        "schemas": [PATCH_OP],
                        "Operations": [{"op": "replace", "path": "active", "value": False}],
                    },
                )
            )
            for base in (second, server.base_url):
                for credential in (token, key):
                    assert (
                        httpx.get(
                            f"{base}/v1/whoami", headers={"Authorization": f"Bearer {credential}"}
                        ).status_code
                        == 401
                    )
            ok(
                scim.patch(
                    f"/Users/{user_id}",
                    json={
                        "schemas": [PATCH_OP],
                        "Operations": [{"op": "replace", "path": "active", "value": True}],
                    },
                )
            )
            assert (
                httpx.get(
                    f"{second}/v1/whoami", headers={"Authorization": f"Bearer {token}"}
                ).status_code
                == 200
            )
            assert scim.delete(f"/Users/{user_id}").status_code == 204
            assert (
                httpx.get(
                    f"{second}/v1/whoami", headers={"Authorization": f"Bearer {token}"}
                ).status_code
                == 401
            )


def test_the_last_active_administrator_is_never_deactivated(server: Server) -> None:
    account = make_account(server)
    with scim_http(server, scim_key(server, account)) as scim:
        body = scim_error(
            scim.patch(
                f"/Users/{account.admin_profile_id}",
                json={
                    "schemas": [PATCH_OP],
                    "Operations": [{"op": "replace", "path": "active", "value": False}],
                },
            ),
            400,
        )
        assert "last administrator" in body["detail"]
        assert whoami(server, jwt_for(server, account.admin_profile_id, account.id)) == 200


# --- Tenancy, authentication, errors -----------------------------------------------------


def test_one_accounts_scim_key_never_reaches_another_account(server: Server) -> None:
    mine, theirs = make_account(server), make_account(server)
    address = email()
    with scim_http(server, scim_key(server, theirs)) as scim:
        their_user = ok(scim.post("/Users", json={"schemas": [USER], "userName": address}), 201)
    with scim_http(server, scim_key(server, mine)) as scim:
        scim_error(scim.get(f"/Users/{their_user['id']}"), 404)
        scim_error(scim.get(f"/Groups/{theirs.workspace_id}"), 404)
        assert (
            ok(scim.get("/Users", params={"filter": f'userName eq "{address}"'}))["totalResults"]
            == 0
        )
        listed = ok(scim.get("/Users", params={"count": "200"}))
        assert their_user["id"] not in {r["id"] for r in listed["Resources"]}
        patch = {
            "schemas": [PATCH_OP],
            "Operations": [{"op": "replace", "path": "active", "value": False}],
        }
        scim_error(scim.patch(f"/Users/{their_user['id']}", json=patch), 404)
        scim_error(scim.delete(f"/Users/{their_user['id']}"), 404)
        scim_error(
            scim.post(
                "/Groups",
                json={
                    "schemas": [GROUP],
                    "displayName": "x",
                    "members": [{"value": their_user["id"]}],
                },
            ),
            404,
        )
        # The same userName is free in another account.
        ok(scim.post("/Users", json={"schemas": [USER], "userName": address}), 201)
    assert whoami(server, jwt_for(server, their_user["id"], theirs.id)) == 200


def test_refusals_are_in_scims_error_format(server: Server) -> None:
    account = make_account(server)
    base = f"{server.base_url}/scim/v2"
    scim_error(httpx.get(f"{base}/Users"), 401)
    reader = make_api_key(server, account, permissions=["workspaces:manage"])
    scim_error(httpx.get(f"{base}/Users", headers={"Authorization": f"Bearer {reader}"}), 403)
    # Administrators hold every scope, scim:manage included.
    admin = jwt_for(server, account.admin_profile_id, account.id)
    assert (
        httpx.get(f"{base}/Users", headers={"Authorization": f"Bearer {admin}"}).status_code == 200
    )
    with scim_http(server, scim_key(server, account)) as scim:
        scim_error(scim.get("/Nothing"), 404)
        assert (
            scim_error(scim.post("/Users", content=b"{not json"), 400)["scimType"]
            == "invalidSyntax"
        )
        taken = email()
        ok(scim.post("/Users", json={"schemas": [USER], "userName": taken}), 201)
        assert (
            scim_error(
                scim.post("/Users", json={"schemas": [USER], "userName": taken.upper()}), 409
            )["scimType"]
            == "uniqueness"
        )
        # A userName that is not an email is kept beside a profile without one; an empty
        # email is no filter value (never "every profile without an email").
        plain = ok(scim.post("/Users", json={"schemas": [USER], "userName": "not-an-email"}), 201)
        found = ok(scim.get("/Users", params={"filter": 'userName eq "NOT-an-email"'}))
        assert [r["id"] for r in found["Resources"]] == [plain["id"]]
        assert profile(server, account, plain["id"])["spec"]["email"] == ""
        empty = scim_error(scim.get("/Users", params={"filter": 'emails.value eq ""'}), 400)
        assert empty["scimType"] == "invalidFilter"
        assert (
            scim_error(scim.get("/Users", params={"filter": 'title co "x"'}), 400)["scimType"]
            == "invalidFilter"
        )
        assert scim_error(scim.get("/Users", params={"filter": "userName eq"}), 400)[
            "scimType"
        ] in (
            "invalidFilter",
            "invalidSyntax",
        )


def test_pages_by_start_index_and_count(server: Server) -> None:
    account = make_account(server)
    with scim_http(server, scim_key(server, account)) as scim:
        for n in range(5):
            ok(
                scim.post(
                    "/Users", json={"schemas": [USER], "userName": email(), "displayName": f"p{n}"}
                ),
                201,
            )
        seen: list[str] = []
        for start in (1, 3, 5):
            page = ok(scim.get("/Users", params={"startIndex": str(start), "count": "2"}))
            assert page["totalResults"] == 6 and page["startIndex"] == start
            seen += [r["id"] for r in page["Resources"]]
        assert len(seen) == len(set(seen)) == 6


# --- The audit trail and webhook events ----------------------------------------------------


def test_changes_through_scim_are_audited_and_emit_the_apis_events(server: Server) -> None:
    account = make_account(server)
    with server.runtime.db.transaction() as session:
        session.add(
            WebhookEndpoint(
                id=f"ep_{secrets.token_hex(8)}",
                account_id=account.id,
                url="http://127.0.0.1:9/never",
                enabled=False,
            )
        )
    with server.runtime.db.transaction() as session:
        endpoint = session.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.account_id == account.id)
        ).one()
        endpoint.enabled = True
    with scim_http(server, scim_key(server, account)) as scim:
        user_id = ok(scim.post("/Users", json={"schemas": [USER], "userName": email()}), 201)["id"]
        patch = {
            "schemas": [PATCH_OP],
            "Operations": [{"op": "replace", "path": "active", "value": False}],
        }
        ok(scim.patch(f"/Users/{user_id}", json=patch))
        # A change of what only SCIM keeps is audited, and sends no event (no /v1 change).
        phone = {"op": "add", "path": "phoneNumbers", "value": [{"value": "+1 555 0100"}]}
        ok(scim.patch(f"/Users/{user_id}", json={"schemas": [PATCH_OP], "Operations": [phone]}))
        ok(
            scim.post(
                "/Groups",
                json={"schemas": [GROUP], "displayName": "Ops", "members": [{"value": user_id}]},
            ),
            201,
        )
        assert scim.delete(f"/Users/{user_id}").status_code == 204
    audit = ok(server.http(account.api_key).get("/v1/account/audit_events", params={"limit": "50"}))
    actions = [e["action"] for e in reversed(audit["items"])]
    assert actions[-6:] == [
        "profile.create",
        "profile.deactivate",
        "scim.user.update",
        "workspace.create",
        "workspace.member.add",
        "profile.delete",
    ]
    assert audit["items"][3]["details"] == {"attributes": ["phoneNumbers"]}
    # Each by the SCIM key.
    (key_id,) = {e["apiKeyId"] for e in audit["items"][:6]}
    assert key_id.startswith("apikey_")
    with server.runtime.db.transaction() as session:
        types = list(
            session.scalars(
                select(WebhookMessage.type)
                .where(WebhookMessage.account_id == account.id)
                .order_by(WebhookMessage.id)
            )
        )
    assert types == [
        "profile.created",
        "profile.deactivated",
        "workspace.created",
        "member.added",
        "profile.deleted",
    ]


def test_bad_input_is_a_scim_error_never_a_500_and_changes_nothing(server: Server) -> None:
    account = make_account(server)
    with scim_http(server, scim_key(server, account)) as scim:
        user_id = ok(scim.post("/Users", json={"schemas": [USER], "userName": email()}), 201)["id"]
        before = ok(scim.get(f"/Users/{user_id}"))
        group_id = ok(scim.post("/Groups", json={"schemas": [GROUP], "displayName": "G"}), 201)[
            "id"
        ]
        bad: list[tuple[str, str, Any]] = [
            ("POST", "/Users", {"schemas": [USER]}),
            ("POST", "/Users", {"schemas": [USER], "userName": "x" * 400}),
            ("POST", "/Users", {"schemas": [USER], "userName": "a\x00b"}),
            ("POST", "/Users", {"schemas": [USER], "userName": email(), "displayName": "n" * 300}),
            ("POST", "/Users", {"schemas": [USER], "userName": email(), "displayName": "a\x07"}),
            ("POST", "/Users", {"schemas": [USER], "userName": email(), "active": "maybe"}),
            ("POST", "/Users", ["not", "an", "object"]),
            ("POST", "/Groups", {"schemas": [GROUP], "displayName": ""}),
            ("POST", "/Groups", {"schemas": [GROUP], "displayName": "g" * 300}),
            ("PATCH", f"/Users/{user_id}", {"schemas": [PATCH_OP], "Operations": ["x", 1]}),
            ("PATCH", f"/Users/{user_id}", {"schemas": [PATCH_OP], "Operations": "x"}),
            ("PATCH", f"/Users/{user_id}", {"schemas": [PATCH_OP], "Operations": [{"op": "jump"}]}),
            (
                "PATCH",
                f"/Users/{user_id}",
                {
                    "schemas": [PATCH_OP],
                    "Operations": [{"op": "replace", "path": "id", "value": "x"}],
                },
            ),
            (
                "PATCH",
                f"/Users/{user_id}",
                {"schemas": [PATCH_OP], "Operations": [{"op": "Remove", "path": "userName"}]},
            ),
            ("PUT", f"/Users/{user_id}", {"schemas": [USER], "userName": "y" * 400}),
            (
                "PATCH",
                f"/Groups/{group_id}",
                {
                    "schemas": [PATCH_OP],
                    "Operations": [{"op": "add", "path": "members", "value": [{"value": "nope"}]}],
                },
            ),
            ("GET", '/Users?filter=userName eq "a" or', None),
            ("GET", "/Users?startIndex=x&count=y", None),
        ]
        for method, path, body in bad:
            response = scim.request(method, path, json=body)
            assert 400 <= response.status_code < 500, (method, path, response.text)
            assert response.json()["schemas"] == [ERROR], (method, path)
        assert ok(scim.get(f"/Users/{user_id}")) == before
        assert "members" not in ok(scim.get(f"/Groups/{group_id}"))


@pytest.mark.parametrize(
    "query",
    [{"filter": 'userName eq "a@b.c"'}, {"startIndex": "3", "count": "2"}, {"attributes": "id"}],
)
def test_the_list_envelope_is_the_one_scim2_server_writes(query: dict[str, str]) -> None:
    """scim.service writes the ListResponse without validating it again: held to
    scim2-server's own."""
    from scim2_server.service import ScimService
    from scim2_server.storage import SearchPage

    from cadenya_server.scim.schemas import PROVIDER, USER
    from cadenya_server.scim.service import SERVICE

    def user() -> Any:
        return USER.model_validate(
            {
                "schemas": [USER.__schema__],
                "id": "profile_x",
                "userName": "a@b.c",
                "displayName": "A",
                "active": True,
                "meta": {"resourceType": "User", "created": "2026-01-01T00:00:00+00:00"},
            }
        )

    with PROVIDER:
        types = SERVICE.searched_types("Users")
        search, _ = SERVICE.read_search_query(types, query)
        for page in (SearchPage(5, [user(), user()]), SearchPage(0, [])):
            ours = SERVICE.search_response("http://h/scim/v2", types, page, search).body
            copies = SearchPage(page.total, [user() for _ in page.resources])
            theirs = ScimService(PROVIDER).search_response(
                "http://h/scim/v2", types, copies, search
            )
            assert ours == theirs.body
