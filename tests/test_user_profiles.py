"""Adding, changing and removing user profiles: /v1/account/profiles (not in the client)."""

from __future__ import annotations

import re
import threading

import httpx
import pytest

from conftest import Server, Tenant, jwt_for, make_account, make_api_key, make_profile

ULID = "[0-9A-HJKMNP-TV-Z]{26}"


def add(http: httpx.Client, email: str, **spec: str) -> httpx.Response:
    return http.post("/v1/account/profiles", json={"spec": {"email": email, **spec}})


def test_create_and_retrieve(server: Server, account: Tenant) -> None:
    http = server.http(account.api_key)
    response = http.post(
        "/v1/account/profiles",
        json={
            "metadata": {"externalId": "hr-42", "labels": {"team": "core"}},
            "spec": {"email": " Zoe@Acme.io ", "name": "Zoë Zed", "role": "admin"},
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert re.fullmatch(f"profile_{ULID}", body["metadata"]["id"])
    assert body["metadata"]["name"] == "Zoë Zed"
    assert body["metadata"]["externalId"] == "hr-42"
    assert body["metadata"]["labels"] == {"team": "core"}
    assert body["metadata"]["accountId"] == account.id
    assert body["spec"] == {
        "type": "PROFILE_TYPE_USER",
        "email": "Zoe@Acme.io",
        "name": "Zoë Zed",
        "role": "admin",
    }
    assert http.get(f"/v1/account/profiles/{body['metadata']['id']}").json() == body

    # The new profile is found by the search, through the official client.
    found = server.client(account.api_key).workspace_admin.list_profiles(query="zoë").items
    assert [p.metadata.id for p in found] == [body["metadata"]["id"]]
    assert found[0].metadata.labels == {"team": "core"}
    found = server.client(account.api_key).workspace_admin.list_profiles(labels="team=core")
    assert [p.metadata.id for p in found] == [body["metadata"]["id"]]

    # An admin can act as one at once; the default role is member.
    admin = server.client(jwt_for(server, body["metadata"]["id"], account.id))
    assert admin.accounts.retrieve().info.challenge_token != ""
    member = add(http, "mo@acme.io", name="Mo").json()
    assert member["spec"]["role"] == "member" and member["metadata"]["name"] == "Mo"

    key_profile = server.client(account.api_key).profiles.whoami().profile.metadata.id
    key_view = http.get(f"/v1/account/profiles/{key_profile}").json()
    assert key_view["spec"]["type"] == "PROFILE_TYPE_API_KEY" and key_view["spec"]["role"] == ""


def test_metadata_name_and_spec_name_are_one_field(server: Server, account: Tenant) -> None:
    http = server.http(account.api_key)
    response = http.post(
        "/v1/account/profiles", json={"metadata": {"name": "Lu"}, "spec": {"email": "lu@acme.io"}}
    )
    assert response.json()["spec"]["name"] == "Lu"
    response = http.post(
        "/v1/account/profiles",
        json={"metadata": {"name": "Al"}, "spec": {"email": "al@acme.io", "name": "Alan"}},
    )
    assert (response.status_code, response.json()["code"]) == (400, 3)


def test_duplicate_email_is_409_case_insensitively(server: Server, account: Tenant) -> None:
    http = server.http(account.api_key)
    assert add(http, "dup@acme.io").status_code == 200
    response = add(http, "DUP@Acme.IO")
    assert (response.status_code, response.json()["code"]) == (409, 6)
    # Another account may use the same email.
    other = make_account(server, name="Other", domain="other.io")
    assert add(server.http(other.api_key), "dup@acme.io").status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"spec": {}},
        {"spec": {"email": "nope"}},
        {"spec": {"email": "a@acme.io", "role": "owner"}},
        {"spec": {"email": "a@acme.io", "name": "x" * 201}},
        {"spec": {"email": "a@acme.io", "name": "bell\x07"}},
        {"spec": {"email": "a@acme.io", "type": "PROFILE_TYPE_API_KEY"}},
        {"spec": {"email": "a@acme.io"}, "metadata": {"labels": {"k": "v!"}}},
        {"spec": {"email": "a@acme.io"}, "metadata": {"id": "profile_x"}},
    ],
)
def test_create_refuses_bad_input(server: Server, account: Tenant, body: dict) -> None:
    response = server.http(account.api_key).post("/v1/account/profiles", json=body)
    assert (response.status_code, response.json()["code"]) == (400, 3), response.text
    profiles = server.client(account.api_key).workspace_admin.list_profiles()
    assert "a@acme.io" not in [p.spec.email for p in profiles]


def test_create_takes_back_the_shape_it_returns(server: Server, account: Tenant) -> None:
    """A client may post a Profile it read, type and all: users are what this call adds."""
    http = server.http(account.api_key)
    read = add(http, "first@acme.io", name="First").json()
    again = {**read["spec"], "email": "second@acme.io"}
    assert again["type"] == "PROFILE_TYPE_USER"
    response = http.post("/v1/account/profiles", json={"spec": again})
    assert response.status_code == 200, response.text
    assert response.json()["spec"]["type"] == "PROFILE_TYPE_USER"
    response = add(http, "third@acme.io", type="PROFILE_TYPE_UNSPECIFIED")
    assert response.status_code == 200, response.text
    assert response.json()["spec"]["type"] == "PROFILE_TYPE_USER"


@pytest.mark.parametrize(
    ("type_", "how"),
    [
        ("PROFILE_TYPE_API_KEY", "POST /v1/account/api_keys"),
        ("PROFILE_TYPE_SYSTEM", "cadenya-server profiles import"),
    ],
)
def test_create_says_how_other_types_are_made(
    server: Server, account: Tenant, type_: str, how: str
) -> None:
    response = add(server.http(account.api_key), "other@acme.io", type=type_)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == 3 and how in body["message"], body
    assert body["details"][0]["fieldViolations"][0]["field"] == "spec.type"
    names = [p.spec.email for p in server.client(account.api_key).workspace_admin.list_profiles()]
    assert "other@acme.io" not in names


def test_update_with_and_without_a_mask(server: Server, account: Tenant) -> None:
    http = server.http(account.api_key)
    created = http.post(
        "/v1/account/profiles",
        json={
            "metadata": {"labels": {"a": "1"}, "externalId": "x"},
            "spec": {"email": "ed@acme.io", "name": "Ed"},
        },
    ).json()
    path = f"/v1/account/profiles/{created['metadata']['id']}"

    body = http.patch(
        path,
        json={
            "metadata": {"labels": {"b": "2"}},
            "spec": {"name": "Edward", "role": "admin"},
            "updateMask": "spec.name",
        },
    ).json()
    assert body["spec"]["name"] == body["metadata"]["name"] == "Edward"
    assert body["spec"]["role"] == "member" and body["metadata"]["labels"] == {"a": "1"}

    body = http.patch(path, json={"spec": {"role": "admin"}, "metadata": {"labels": {}}}).json()
    assert body["spec"]["role"] == "admin" and body["metadata"]["labels"] == {}
    assert body["metadata"]["externalId"] == "x" and body["spec"]["email"] == "ed@acme.io"

    # The search sees the new name.
    found = server.client(account.api_key).workspace_admin.list_profiles(query="edward").items
    assert [p.metadata.id for p in found] == [created["metadata"]["id"]]

    for bad in (
        {"spec": {"email": "other@acme.io"}},
        {"spec": {"role": "owner"}},
        {"updateMask": "spec.email"},
        {"updateMask": "spec.role"},
        {"metadata": {"name": "A"}, "spec": {"name": "B"}},
    ):
        response = http.patch(path, json=bad)
        assert (response.status_code, response.json()["code"]) == (400, 3), bad
    assert http.get(path).json() == body


def test_last_administrator_cannot_be_demoted_or_deleted(server: Server, account: Tenant) -> None:
    http = server.http(account.api_key)
    admin_path = f"/v1/account/profiles/{account.admin_profile_id}"
    for response in (
        http.patch(admin_path, json={"spec": {"role": "member"}}),
        http.delete(admin_path),
    ):
        assert (response.status_code, response.json()["code"]) == (400, 9)
    assert http.get(admin_path).json()["spec"]["role"] == "admin"

    second = add(http, "second@acme.io", role="admin").json()["metadata"]["id"]
    assert http.patch(admin_path, json={"spec": {"role": "member"}}).status_code == 200
    second_path = f"/v1/account/profiles/{second}"
    response = http.delete(second_path)
    assert (response.status_code, response.json()["code"]) == (400, 9)
    # Promote again, then the first admin may go.
    assert http.patch(admin_path, json={"spec": {"role": "admin"}}).status_code == 200
    assert http.delete(second_path).status_code == 200
    assert http.get(second_path).status_code == 404


def test_an_administrator_cannot_remove_or_demote_their_own_profile(
    server: Server, account: Tenant
) -> None:
    http = server.http(account.api_key)
    second = add(http, "second@acme.io", role="admin").json()["metadata"]["id"]
    own_path = f"/v1/account/profiles/{second}"
    with server.http(jwt_for(server, second, account.id)) as own:
        for response in (
            own.patch(own_path, json={"spec": {"role": "member"}}),
            own.delete(own_path),
        ):
            assert (response.status_code, response.json()["code"]) == (400, 9), response.text
            assert "locked out" in response.json()["message"]
        assert own.get(own_path).json()["spec"]["role"] == "admin"
    # Another administrator may.
    assert http.delete(own_path).status_code == 200


def test_concurrent_demotions_leave_one_administrator(server: Server, account: Tenant) -> None:
    http = server.http(account.api_key)
    second = add(http, "second@acme.io", role="admin").json()["metadata"]["id"]
    ids = [account.admin_profile_id, second]
    statuses: list[int] = []
    start = threading.Barrier(2)

    def demote(profile_id: str) -> None:
        with server.http(account.api_key) as client:
            start.wait()
            response = client.patch(
                f"/v1/account/profiles/{profile_id}", json={"spec": {"role": "member"}}
            )
            statuses.append(response.status_code)

    threads = [threading.Thread(target=demote, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 400]
    roles = [http.get(f"/v1/account/profiles/{i}").json()["spec"]["role"] for i in ids]
    assert sorted(roles) == ["admin", "member"]


def test_delete_removes_memberships_and_sign_in(server: Server, account: Tenant) -> None:
    http = server.http(account.api_key)
    client = server.client(account.api_key)
    profile_id = add(http, "gone@acme.io", name="Gone").json()["metadata"]["id"]
    client.workspace_admin.add_member(workspace_id=account.workspace_id, profile_id=profile_id)
    token = jwt_for(server, profile_id, account.id)
    assert server.http(token).get("/v1/account").status_code == 200

    assert http.delete(f"/v1/account/profiles/{profile_id}").json() == {}
    assert client.workspace_admin.list_members(workspace_id=account.workspace_id).items == []
    assert http.get(f"/v1/account/profiles/{profile_id}").status_code == 404
    assert server.http(token).get("/v1/account").status_code == 401
    response = http.delete(f"/v1/account/profiles/{profile_id}")
    assert (response.status_code, response.json()["code"]) == (404, 5)
    # The email is free again.
    assert add(http, "gone@acme.io").status_code == 200


def test_api_key_profiles_are_managed_elsewhere(server: Server, account: Tenant) -> None:
    http = server.http(account.api_key)
    key_profile = server.client(account.api_key).profiles.whoami().profile.metadata.id
    for response in (
        http.delete(f"/v1/account/profiles/{key_profile}"),
        http.patch(f"/v1/account/profiles/{key_profile}", json={"spec": {"name": "Renamed"}}),
    ):
        assert (response.status_code, response.json()["code"]) == (400, 9)
    assert server.client(account.api_key).profiles.whoami().profile.spec.name != "Renamed"


def test_only_administrators(server: Server, account: Tenant) -> None:
    member = make_profile(server, account.id, name="Mia", email="mia@acme.io")
    target = f"/v1/account/profiles/{member}"
    read_only = make_api_key(server, account, permissions=["workspaces:read", "api_keys:read"])
    for token in (jwt_for(server, member, account.id), read_only):
        http = server.http(token)
        for response in (
            add(http, "new@acme.io"),
            http.get(target),
            http.patch(target, json={"spec": {"role": "admin"}}),
            http.delete(target),
        ):
            assert (response.status_code, response.json()["code"]) == (403, 7)
    admin_http = server.http(account.api_key)
    assert admin_http.get(target).json()["spec"]["role"] == "member"
    assert add(admin_http, "new@acme.io").status_code == 200


def test_another_accounts_profiles_are_not_found(server: Server, account: Tenant) -> None:
    other = make_account(server, name="Other", domain="other.io")
    theirs = make_profile(server, other.id, name="Theo", email="theo@other.io")
    http = server.http(account.api_key)
    path = f"/v1/account/profiles/{theirs}"
    for response in (
        http.get(path),
        http.patch(path, json={"spec": {"name": "Stolen", "role": "admin"}}),
        http.delete(path),
        http.get(f"/v1/account/profiles/{other.admin_profile_id}"),
        http.delete(f"/v1/account/profiles/{other.admin_profile_id}"),
    ):
        assert (response.status_code, response.json()["code"]) == (404, 5)
    their_view = server.http(other.api_key).get(path).json()
    assert their_view["spec"]["name"] == "Theo" and their_view["spec"]["role"] == "member"
    assert (
        server.http(other.api_key).get(f"/v1/account/profiles/{other.admin_profile_id}").status_code
        == 200
    )


def test_a_profiles_workspaces_are_its_active_memberships(server: Server, account: Tenant) -> None:
    person = make_profile(server, account.id, name="Wes", email="wes@acme.io")
    http = server.http(account.api_key)
    ids = []
    for name in ("One", "Two", "Gone"):
        made = http.post("/v1/account/workspaces", json={"metadata": {"name": name}}).json()
        ids.append(made["metadata"]["id"])
        added = http.post(
            f"/v1/account/workspaces/{made['metadata']['id']}/members", json={"profileId": person}
        )
        assert added.status_code == 200, added.text
    assert http.delete(f"/v1/account/workspaces/{ids[2]}").status_code == 200
    listed = http.get(f"/v1/account/profiles/{person}/workspaces")
    assert listed.status_code == 200, listed.text
    assert [w["metadata"]["name"] for w in listed.json()["items"]] == ["One", "Two"]
    assert listed.json()["pagination"]["total"] == 2
    first = http.get(f"/v1/account/profiles/{person}/workspaces", params={"limit": 1}).json()
    rest = http.get(
        f"/v1/account/profiles/{person}/workspaces",
        params={"limit": 1, "cursor": first["pagination"]["nextCursor"]},
    ).json()
    assert [w["metadata"]["id"] for w in first["items"] + rest["items"]] == ids[:2]
    # Administrators only; another account's profile does not exist here.
    as_person = server.http(jwt_for(server, person, account.id))
    refused = as_person.get(f"/v1/account/profiles/{person}/workspaces")
    assert (refused.status_code, refused.json()["code"]) == (403, 7)
    other = make_account(server, name="Other", domain="other.io")
    foreign = server.http(other.api_key).get(f"/v1/account/profiles/{person}/workspaces")
    assert (foreign.status_code, foreign.json()["code"]) == (404, 5)
