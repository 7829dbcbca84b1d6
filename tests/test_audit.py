"""The audit trail: every change writes one event in its own transaction; admins list them."""

from __future__ import annotations

import re

from conftest import Server, Tenant, jwt_for, make_account, make_api_key, make_profile

ULID = "[0-9A-HJKMNP-TV-Z]{26}"
RFC3339_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def events(server: Server, token: str, **params: object) -> list[dict]:
    response = server.http(token).get("/v1/account/audit_events", params=params)
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_every_change_is_recorded_newest_first(server: Server, account: Tenant) -> None:
    client = server.client(account.api_key)
    http = server.http(account.api_key)
    key_profile = client.profiles.whoami().profile.metadata.id

    created = http.post(
        "/v1/account/workspaces",
        json={"metadata": {"name": "Audited"}, "spec": {}},
        headers={"X-Request-Id": "req-create-1"},
    ).json()
    ws = created["metadata"]["id"]
    client.workspace_admin.update(workspace_id=ws, metadata={"name": "Renamed"})
    person = http.post("/v1/account/profiles", json={"spec": {"email": "p@acme.io"}}).json()
    person_id = person["metadata"]["id"]
    http.patch(f"/v1/account/profiles/{person_id}", json={"spec": {"name": "Pat"}})
    member = client.workspace_admin.add_member(workspace_id=ws, profile_id=person_id)
    client.workspace_admin.add_member(workspace_id=ws, profile_id=person_id)  # no change
    client.workspace_admin.remove_member(person_id, workspace_id=ws)
    invited = client.workspace_admin.add_member(workspace_id=ws, email="new@acme.io")
    http.delete(f"/v1/account/profiles/{person_id}")
    client.workspace_admin.archive(workspace_id=ws)
    client.workspace_admin.archive(workspace_id=ws)  # no change

    got = events(server, account.api_key)
    assert [(e["action"], e["resourceId"]) for e in got] == [
        ("workspace.archive", ws),
        ("profile.delete", person_id),
        ("workspace.member.add", ws),
        ("profile.create", invited.profile_id),
        ("workspace.member.remove", ws),
        ("workspace.member.add", ws),
        ("profile.update", person_id),
        ("profile.create", person_id),
        ("workspace.update", ws),
        ("workspace.create", ws),
    ]
    for event in got:
        assert set(event) == {
            "id",
            "accountId",
            "actorProfileId",
            "apiKeyId",
            "action",
            "resourceId",
            "requestId",
            "details",
            "createdAt",
        }
        assert re.fullmatch(f"audit_{ULID}", event["id"])
        assert event["accountId"] == account.id
        assert event["actorProfileId"] == key_profile
        assert event["apiKeyId"] == account.api_key_id
        assert event["requestId"]
        assert RFC3339_MS.fullmatch(event["createdAt"])
    assert got[-1]["requestId"] == "req-create-1"
    assert got[-2]["details"] == {"fields": ["metadata.name"]}
    assert got[5]["details"] == {"profileId": person_id, "actorId": member.actor_id}
    assert got[7]["details"] == {"role": "member"}


def test_a_jwt_caller_has_no_api_key(server: Server, account: Tenant) -> None:
    admin = server.client(jwt_for(server, account.admin_profile_id, account.id))
    ws = admin.workspace_admin.create(metadata={"name": "By JWT"}, spec={}).metadata.id
    (event,) = events(server, account.api_key)
    assert (event["action"], event["resourceId"]) == ("workspace.create", ws)
    assert (event["actorProfileId"], event["apiKeyId"]) == (account.admin_profile_id, "")


def test_refused_changes_leave_no_event(server: Server, account: Tenant) -> None:
    http = server.http(account.api_key)
    assert http.delete(f"/v1/account/workspaces/{account.workspace_id}").status_code == 400
    assert http.post("/v1/account/profiles", json={"spec": {"email": "d@acme.io"}}).is_success
    assert http.post("/v1/account/profiles", json={"spec": {"email": "D@acme.io"}}).status_code == (
        409
    )
    admin = f"/v1/account/profiles/{account.admin_profile_id}"
    assert http.patch(admin, json={"spec": {"role": "member"}}).status_code == 400
    assert [e["action"] for e in events(server, account.api_key)] == ["profile.create"]


def test_pages_and_cursors(server: Server, account: Tenant) -> None:
    client = server.client(account.api_key)
    for n in range(5):
        client.workspace_admin.create(metadata={"name": f"W{n}"}, spec={})
    everything = events(server, account.api_key)
    http = server.http(account.api_key)
    seen: list[str] = []
    cursor = ""
    while True:
        page = http.get("/v1/account/audit_events", params={"limit": 2, "cursor": cursor}).json()
        assert page["pagination"]["total"] == 5
        seen += [e["id"] for e in page["items"]]
        cursor = page["pagination"]["nextCursor"]
        if not cursor:
            break
    assert seen == [e["id"] for e in everything]
    assert seen == sorted(seen, reverse=True)
    for params in ({"cursor": "garbage"}, {"limit": -1}):
        response = http.get("/v1/account/audit_events", params=params)
        assert (response.status_code, response.json()["code"]) == (400, 3)


def test_administrators_only_and_per_account(server: Server, account: Tenant) -> None:
    server.client(account.api_key).workspace_admin.create(metadata={"name": "Mine"}, spec={})
    member = make_profile(server, account.id, name="Mia", email="mia@acme.io")
    read_only = make_api_key(server, account, permissions=["workspaces:read", "api_keys:read"])
    for token in (jwt_for(server, member, account.id), read_only):
        response = server.http(token).get("/v1/account/audit_events")
        assert (response.status_code, response.json()["code"]) == (403, 7)
    assert server.http().get("/v1/account/audit_events").status_code == 401
    other = make_account(server, name="Other", domain="other.io")
    assert events(server, other.api_key) == []


def test_filters_by_action_and_actor_with_their_own_total_and_cursor(
    server: Server, account: Tenant
) -> None:
    admin = make_profile(server, account.id, name="Ann", email="ann@acme.io", role="admin")
    as_ann = server.client(jwt_for(server, admin, account.id))
    as_key = server.client(account.api_key)
    for n in range(3):
        as_ann.workspace_admin.create(metadata={"name": f"Ann {n}"}, spec={})
    created = as_key.workspace_admin.create(metadata={"name": "Key's"}, spec={})
    http = server.http(account.api_key)
    renamed = http.patch(
        f"/v1/account/workspaces/{created.metadata.id}", json={"metadata": {"name": "Renamed"}}
    )
    assert renamed.status_code == 200, renamed.text

    def listed(**params: object) -> dict:
        response = http.get("/v1/account/audit_events", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    by_action = listed(action="workspace.create")
    assert [e["action"] for e in by_action["items"]] == ["workspace.create"] * 4
    assert by_action["pagination"]["total"] == 4
    by_ann = listed(actorProfileId=admin)
    assert {e["actorProfileId"] for e in by_ann["items"]} == {admin}
    assert by_ann["pagination"]["total"] == 3
    (update,) = listed(action="workspace.update")["items"]
    key_profile = update["actorProfileId"]
    assert key_profile != admin
    both = listed(action="workspace.create", actorProfileId=key_profile)
    assert [e["resourceId"] for e in both["items"]] == [created.metadata.id]
    assert listed(action="workspace.archive")["pagination"]["total"] == 0
    # Pages of a filter hold only its events; its cursor is no other filter's.
    first = listed(action="workspace.create", limit=3)
    rest = listed(action="workspace.create", limit=3, cursor=first["pagination"]["nextCursor"])
    assert [e["id"] for e in first["items"] + rest["items"]] == [
        e["id"] for e in by_action["items"]
    ]
    elsewhere = http.get(
        "/v1/account/audit_events",
        params={"action": "workspace.update", "cursor": first["pagination"]["nextCursor"]},
    )
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (400, 3)


def test_bad_filters_are_refused_before_the_database(server: Server, account: Tenant) -> None:
    http = server.http(account.api_key)
    for params in (
        {"action": "workspace.create\x00"},
        {"action": "\x00"},
        {"action": "Workspace Create"},
        {"action": "x" * 65},
        {"actorProfileId": "profile_nope"},
        {"actorProfileId": "workspace_01HZZZZZZZZZZZZZZZZZZZZZZZ"},
        {"actorProfileId": "\x00"},
    ):
        response = http.get("/v1/account/audit_events", params=params)
        assert (response.status_code, response.json()["code"]) == (400, 3), params
        assert response.json()["message"]
