"""Workspace members, through the official client."""

from __future__ import annotations

import re
import threading
from functools import partial

import pytest
from cadenya import Cadenya

from conftest import Server, Tenant, jwt_for, make_account, make_api_key, make_profile
from helpers import refused

ULID = "[0-9A-HJKMNP-TV-Z]{26}"


def member_ids(client: Cadenya, workspace_id: str) -> list[str]:
    return [m.profile_id for m in client.workspace_admin.list_members(workspace_id=workspace_id)]


def test_add_list_and_remove(server: Server, account: Tenant) -> None:
    client = server.client(account.api_key)
    ws = account.workspace_id
    assert client.workspace_admin.list_members(workspace_id=ws).items == []
    ada = make_profile(server, account.id, name="Ada", email="ada@acme.io")

    added = client.workspace_admin.add_member(workspace_id=ws, profile_id=ada)
    assert added.profile_id == ada
    assert re.fullmatch(f"actor_{ULID}", added.actor_id)
    assert (added.name, added.email) == ("Ada", "ada@acme.io")
    assert added.added_at is not None

    raw = server.http(account.api_key).get(f"/v1/account/workspaces/{ws}/members").json()
    assert set(raw) == {"items", "pagination"}
    assert set(raw["items"][0]) == {"profileId", "actorId", "name", "email", "addedAt"}
    assert raw["pagination"] == {"nextCursor": "", "total": 1}

    # Adding again is idempotent: the same actor comes back.
    again = client.workspace_admin.add_member(workspace_id=ws, profile_id=ada)
    assert again == added
    assert member_ids(client, ws) == [ada]

    assert client.workspace_admin.remove_member(ada, workspace_id=ws) is None
    assert member_ids(client, ws) == []
    # The profile stays.
    profile = server.http(account.api_key).get(f"/v1/account/profiles/{ada}")
    assert profile.status_code == 200
    error = refused(partial(client.workspace_admin.remove_member, ada, workspace_id=ws))
    assert (error.status_code, error.code) == (404, 5)


def test_add_by_email_finds_or_invites(server: Server, account: Tenant) -> None:
    client = server.client(account.api_key)
    ws = account.workspace_id
    bo = make_profile(server, account.id, name="Bo", email="Bo@Acme.io")
    found = client.workspace_admin.add_member(workspace_id=ws, email="bo@ACME.io")
    assert (found.profile_id, found.name, found.email) == (bo, "Bo", "Bo@Acme.io")

    invited = client.workspace_admin.add_member(workspace_id=ws, email=" new.person@acme.io ")
    assert invited.email == "new.person@acme.io" and invited.name == ""
    profile = server.http(account.api_key).get(f"/v1/account/profiles/{invited.profile_id}").json()
    assert profile["spec"]["type"] == "PROFILE_TYPE_USER"
    assert profile["spec"]["role"] == "member"
    # The invited person can sign in as a member and reaches the workspace.
    invitee = server.client(jwt_for(server, invited.profile_id, account.id))
    assert [w.metadata.id for w in invitee.workspaces.list()] == [ws]

    # Inviting the same email again is the same member.
    assert client.workspace_admin.add_member(workspace_id=ws, email="NEW.person@acme.io") == invited
    assert sorted(member_ids(client, ws)) == sorted([bo, invited.profile_id])


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"profileId": "", "email": ""},
        {"profileId": "profile_x", "email": "a@acme.io"},
        {"email": "not-an-email"},
        {"email": "a@acme.io", "role": "admin"},
        {"profileId": 7},
    ],
)
def test_add_refuses_bad_bodies(server: Server, account: Tenant, body: dict) -> None:
    http = server.http(account.api_key)
    response = http.post(f"/v1/account/workspaces/{account.workspace_id}/members", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == 3
    assert member_ids(server.client(account.api_key), account.workspace_id) == []


def test_api_key_profiles_are_not_members(server: Server, account: Tenant) -> None:
    client = server.client(account.api_key)
    key_profile = client.profiles.whoami().profile.metadata.id
    error = refused(
        partial(
            client.workspace_admin.add_member,
            workspace_id=account.workspace_id,
            profile_id=key_profile,
        )
    )
    assert (error.status_code, error.code) == (400, 9)


def test_pagination(server: Server, account: Tenant) -> None:
    client = server.client(account.api_key)
    ws = account.workspace_id
    ids = [make_profile(server, account.id, name=f"P{n}", email=f"p{n}@acme.io") for n in range(5)]
    for profile_id in ids:
        client.workspace_admin.add_member(workspace_id=ws, profile_id=profile_id)
    first = client.workspace_admin.list_members(workspace_id=ws, limit=2)
    assert [m.profile_id for m in first.items] == ids[:2]
    assert [m.profile_id for m in first] == ids
    http = server.http(account.api_key)
    cursor = first.next_cursor
    other_ws = client.workspace_admin.create(metadata={"name": "Other"}, spec={}).metadata.id
    for path, params in (
        (f"/v1/account/workspaces/{ws}/members", {"cursor": cursor[:-2]}),
        (f"/v1/account/workspaces/{other_ws}/members", {"cursor": cursor}),
        (f"/v1/account/workspaces/{ws}/members", {"limit": -5}),
    ):
        response = http.get(path, params=params)
        assert (response.status_code, response.json()["code"]) == (400, 3), params


def test_simultaneous_adds_create_one_actor(server: Server, account: Tenant) -> None:
    profile_id = make_profile(server, account.id, name="Racer", email="racer@acme.io")
    path = f"/v1/account/workspaces/{account.workspace_id}/members"
    results: list[tuple[int, str]] = []
    start = threading.Barrier(8)

    def add() -> None:
        with server.http(account.api_key) as http:
            start.wait()
            response = http.post(path, json={"profileId": profile_id})
            results.append((response.status_code, response.json().get("actorId", "")))

    threads = [threading.Thread(target=add) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {status for status, _ in results} == {200}
    assert len({actor for _, actor in results}) == 1
    listed = server.client(account.api_key).workspace_admin.list_members(
        workspace_id=account.workspace_id
    )
    assert [(m.profile_id, m.actor_id) for m in listed.items] == [(profile_id, results[0][1])]
    events = server.http(account.api_key).get("/v1/account/audit_events").json()["items"]
    assert [e["action"] for e in events].count("workspace.member.add") == 1


def test_simultaneous_invites_create_one_profile(server: Server, account: Tenant) -> None:
    path = f"/v1/account/workspaces/{account.workspace_id}/members"
    results: list[str] = []
    start = threading.Barrier(6)

    def invite() -> None:
        with server.http(account.api_key) as http:
            start.wait()
            response = http.post(path, json={"email": "same@acme.io"})
            assert response.status_code == 200, response.text
            results.append(response.json()["profileId"])

    threads = [threading.Thread(target=invite) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 6 and len(set(results)) == 1


def test_archived_workspace_refuses_member_calls(server: Server, account: Tenant) -> None:
    client = server.client(account.api_key)
    ws = client.workspace_admin.create(metadata={"name": "Temp"}, spec={}).metadata.id
    ada = make_profile(server, account.id, name="Ada", email="ada@acme.io")
    client.workspace_admin.add_member(workspace_id=ws, profile_id=ada)
    client.workspace_admin.archive(workspace_id=ws)
    for call, args, kwargs in (
        (client.workspace_admin.list_members, (), {}),
        (client.workspace_admin.add_member, (), {"profile_id": ada}),
        (client.workspace_admin.remove_member, (ada,), {}),
    ):
        error = refused(partial(call, *args, workspace_id=ws, **kwargs))
        assert (error.status_code, error.code) == (403, 7)


def test_refusals_by_role(server: Server, account: Tenant) -> None:
    ws = account.workspace_id
    ada = make_profile(server, account.id, name="Ada", email="ada@acme.io")
    server.client(account.api_key).workspace_admin.add_member(workspace_id=ws, profile_id=ada)
    member = server.client(jwt_for(server, ada, account.id))
    read_only = server.client(
        make_api_key(server, account, permissions=["workspaces:read", "api_keys:read"])
    )
    for client in (member, read_only):
        assert member_ids(client, ws) == [ada]
        for call, args, kwargs in (
            (client.workspace_admin.add_member, (), {"email": "x@acme.io"}),
            (client.workspace_admin.remove_member, (ada,), {}),
        ):
            error = refused(partial(call, *args, workspace_id=ws, **kwargs))
            assert (error.status_code, error.code) == (403, 7)
    assert member_ids(server.client(account.api_key), ws) == [ada]


def test_another_accounts_ids_are_not_found(server: Server, account: Tenant) -> None:
    other = make_account(server, name="Other", domain="other.io")
    theirs = server.client(other.api_key)
    their_profile = make_profile(server, other.id, name="Theo", email="theo@other.io")
    theirs.workspace_admin.add_member(workspace_id=other.workspace_id, profile_id=their_profile)

    mine = server.client(account.api_key)
    for call, args, kwargs in (
        (mine.workspace_admin.list_members, (), {"workspace_id": other.workspace_id}),
        (
            mine.workspace_admin.add_member,
            (),
            {"workspace_id": other.workspace_id, "profile_id": account.admin_profile_id},
        ),
        (
            mine.workspace_admin.remove_member,
            (their_profile,),
            {"workspace_id": other.workspace_id},
        ),
        # Their profile, my workspace: their profile does not exist here.
        (
            mine.workspace_admin.add_member,
            (),
            {"workspace_id": account.workspace_id, "profile_id": their_profile},
        ),
        (
            mine.workspace_admin.remove_member,
            (their_profile,),
            {"workspace_id": account.workspace_id},
        ),
    ):
        error = refused(partial(call, *args, **kwargs))
        assert (error.status_code, error.code) == (404, 5)
    assert member_ids(theirs, other.workspace_id) == [their_profile]
    assert member_ids(mine, account.workspace_id) == []
    # An email that exists only in the other account invites a new profile here.
    invited = mine.workspace_admin.add_member(
        workspace_id=account.workspace_id, email="theo@other.io"
    )
    assert invited.profile_id != their_profile
