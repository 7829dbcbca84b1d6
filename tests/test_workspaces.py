"""Workspaces: /v1/account/workspaces and /v1/workspaces, through the official client."""

from __future__ import annotations

import re
import threading
from functools import partial

import pytest
from cadenya import Cadenya

from conftest import Server, Tenant, jwt_for, make_account, make_api_key, make_profile
from helpers import METADATA_FIELDS, refused

ULID = "[0-9A-HJKMNP-TV-Z]{26}"
RFC3339_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def create(client: Cadenya, name: str, **labels: str) -> str:
    return client.workspace_admin.create(
        metadata={"name": name, "labels": labels}, spec={}
    ).metadata.id


def member_client(server: Server, account: Tenant) -> tuple[str, Cadenya]:
    member = make_profile(server, account.id, name="Mia Member", email="mia@acme.io")
    return member, server.client(jwt_for(server, member, account.id))


def test_create_and_retrieve(server: Server, account: Tenant) -> None:
    client = server.client(account.api_key)
    created = client.workspace_admin.create(
        metadata={
            "name": "  Research  ",
            "external_id": "ext-7",
            "labels": {"cadenya.com/team": "core"},
        },
        spec={"description": "Line one\nline two"},
    )
    assert re.fullmatch(f"workspace_{ULID}", created.metadata.id)
    assert created.metadata.account_id == account.id
    assert created.metadata.name == "Research"
    assert created.metadata.external_id == "ext-7"
    assert created.metadata.labels == {"cadenya.com/team": "core"}
    # The API key's profile created it.
    key_profile = client.profiles.whoami().profile.metadata.id
    assert created.metadata.profile_id == key_profile
    assert created.spec.description == "Line one\nline two"
    assert created.status == "STATUS_ENABLED"
    assert created.info is not None and created.info.total_agents == 0

    got = client.workspace_admin.retrieve(workspace_id=created.metadata.id)
    assert got == created
    raw = server.http(account.api_key).get(f"/v1/account/workspaces/{created.metadata.id}").json()
    assert set(raw) == {"metadata", "spec", "status", "info"}
    assert set(raw["metadata"]) == METADATA_FIELDS
    assert RFC3339_MS.fullmatch(raw["metadata"]["createdAt"])
    assert raw["info"] == {
        "totalAvailableTools": 0,
        "totalMemoryEntries": 0,
        "totalAgents": 0,
        "totalAgentVariations": 0,
    }
    account_view = client.accounts.retrieve()
    assert [w.metadata.id for w in account_view.spec.workspaces] == [
        account.workspace_id,
        created.metadata.id,
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"metadata": {}, "spec": {}}, "metadata.name"),
        ({"metadata": {"name": "   "}, "spec": {}}, "metadata.name"),
        ({"metadata": {"name": "x" * 201}, "spec": {}}, "metadata.name"),
        ({"metadata": {"name": "a\x00b"}, "spec": {}}, "metadata.name"),
        ({"metadata": {"name": "ok", "externalId": "e\nx"}, "spec": {}}, "metadata.externalId"),
        ({"metadata": {"name": "ok", "labels": {"bad key!": "v"}}}, "metadata.labels[bad key!]"),
        ({"metadata": {"name": "ok", "labels": {"k": "-v"}}}, "metadata.labels[k]"),
        ({"metadata": {"name": "ok"}, "spec": {"description": "nul\x00"}}, "spec.description"),
        ({"metadata": {"name": "ok"}, "spec": {"description": "x" * 4001}}, "spec.description"),
        ({"metadata": {"name": "ok"}, "spec": {}, "status": "STATUS_ENABLED"}, "status"),
        ({"metadata": {"name": "ok", "id": "workspace_x"}}, "metadata.id"),
    ],
)
def test_create_refuses_bad_input(server: Server, account: Tenant, body: dict, field: str) -> None:
    response = server.http(account.api_key).post("/v1/account/workspaces", json=body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["code"] == 3
    violations = error["details"][0]["fieldViolations"]
    assert field in [v["field"] for v in violations]
    names = [w.metadata.name for w in server.client(account.api_key).workspace_admin.list_account()]
    assert names == ["Default"]


def test_create_refuses_members_and_read_only_keys(server: Server, account: Tenant) -> None:
    _, member = member_client(server, account)
    read_only = server.client(
        make_api_key(server, account, permissions=["workspaces:read", "api_keys:read"])
    )
    for client in (member, read_only):
        error = refused(partial(client.workspace_admin.create, metadata={"name": "Nope"}, spec={}))
        assert (error.status_code, error.code) == (403, 7)
        # Reading is allowed to both.
        assert [w.metadata.id for w in client.workspace_admin.list_account()] == [
            account.workspace_id
        ]
    no_scopes = server.client(make_api_key(server, account, permissions=[]))
    error = refused(no_scopes.workspace_admin.list_account)
    assert (error.status_code, error.code) == (403, 7)
    assert server.http().get("/v1/account/workspaces").status_code == 401


def test_list_account_pages_filters_and_cursors(server: Server, account: Tenant) -> None:
    client = server.client(account.api_key)
    ids = [account.workspace_id]
    for n in range(5):
        ids.append(create(client, f"W{n}", env="prod" if n % 2 else "dev"))
    first = client.workspace_admin.list_account(limit=2)
    assert [w.metadata.id for w in first.items] == ids[:2]
    assert [w.metadata.id for w in first] == ids
    raw = server.http(account.api_key).get("/v1/account/workspaces", params={"limit": 2}).json()
    assert raw["pagination"]["total"] == 6 and raw["pagination"]["nextCursor"]

    prod = client.workspace_admin.list_account(labels="env=prod", limit=1)
    assert [w.metadata.id for w in prod] == [ids[2], ids[4]]
    assert client.workspace_admin.list_account(labels="env=none").items == []

    http = server.http(account.api_key)
    cursor = raw["pagination"]["nextCursor"]
    for params in (
        {"cursor": cursor + "x"},
        {"cursor": cursor, "labels": "env=prod"},
        {"cursor": cursor, "includeArchived": "true"},
        {"cursor": "not-a-cursor"},
        {"limit": -1},
        {"limit": "many"},
        {"labels": "novalue"},
        {"labels": "bad key=v"},
    ):
        response = http.get("/v1/account/workspaces", params=params)
        assert response.status_code == 400, params
        assert response.json()["code"] == 3
    # A cursor of one account is worthless in another.
    other = make_account(server, name="Other", domain="other.io")
    response = server.http(other.api_key).get("/v1/account/workspaces", params={"cursor": cursor})
    assert response.status_code == 400

    big = http.get("/v1/account/workspaces", params={"limit": 5000}).json()
    assert len(big["items"]) == 6 and big["pagination"]["nextCursor"] == ""


def test_update_with_and_without_a_mask(server: Server, account: Tenant) -> None:
    client = server.client(account.api_key)
    workspace_id = client.workspace_admin.create(
        metadata={"name": "Before", "external_id": "x1", "labels": {"a": "1"}},
        spec={"description": "old"},
    ).metadata.id

    # Only the masked field changes, whatever else the body carries.
    updated = client.workspace_admin.update(
        workspace_id=workspace_id,
        metadata={"name": "After", "labels": {"b": "2"}},
        spec={"description": "ignored"},
        update_mask="metadata.name",
    )
    assert updated.metadata.name == "After"
    assert updated.metadata.labels == {"a": "1"}
    assert updated.spec.description == "old"

    # A masked field absent from the body is cleared; snake_case paths work too.
    updated = client.workspace_admin.update(
        workspace_id=workspace_id,
        metadata={"name": "After"},
        update_mask="metadata.labels, metadata.external_id",
    )
    assert updated.metadata.labels == {} and updated.metadata.external_id == ""
    assert updated.metadata.name == "After"

    # Without a mask, the fields present in the body change.
    updated = client.workspace_admin.update(workspace_id=workspace_id, spec={"description": "new"})
    assert updated.spec.description == "new" and updated.metadata.name == "After"
    assert client.workspace_admin.retrieve(workspace_id=workspace_id) == updated

    for kwargs in (
        {"metadata": {"name": "X"}, "update_mask": "metadata.id"},
        {"metadata": {"name": "X"}, "update_mask": "status"},
        {"metadata": {"name": ""}, "update_mask": "metadata.name"},
        {"spec": {}, "update_mask": "metadata.name"},
        {"metadata": {"name": "X", "labels": {"": "v"}}},
    ):
        error = refused(partial(client.workspace_admin.update, workspace_id=workspace_id, **kwargs))
        assert (error.status_code, error.code) == (400, 3), kwargs
    assert client.workspace_admin.retrieve(workspace_id=workspace_id) == updated

    _, member = member_client(server, account)
    error = refused(
        partial(member.workspace_admin.update, workspace_id=workspace_id, metadata={"name": "Mine"})
    )
    assert (error.status_code, error.code) == (403, 7)


def test_archive(server: Server, account: Tenant) -> None:
    client = server.client(account.api_key)
    workspace_id = create(client, "Short-lived")
    assert client.workspace_admin.archive(workspace_id=workspace_id) is None

    got = client.workspace_admin.retrieve(workspace_id=workspace_id)
    assert got.status == "STATUS_ARCHIVED"
    assert [w.metadata.id for w in client.accounts.retrieve().spec.workspaces] == [
        account.workspace_id
    ]
    assert [w.metadata.id for w in client.workspace_admin.list_account()] == [account.workspace_id]
    assert [w.metadata.id for w in client.workspace_admin.list_account(include_archived=True)] == [
        account.workspace_id,
        workspace_id,
    ]
    assert [w.metadata.id for w in client.workspaces.list()] == [account.workspace_id]
    with server.runtime.db.transaction(write=False) as session:
        from cadenya_server.models import Workspace

        assert session.get(Workspace, workspace_id).archived_at is not None

    error = refused(
        partial(client.workspace_admin.update, workspace_id=workspace_id, metadata={"name": "Back"})
    )
    assert (error.status_code, error.code) == (403, 7)
    # Archiving twice is harmless.
    client.workspace_admin.archive(workspace_id=workspace_id)

    error = refused(partial(client.workspace_admin.archive, workspace_id=account.workspace_id))
    assert (error.status_code, error.code) == (400, 9)
    assert client.workspace_admin.retrieve(workspace_id=account.workspace_id).status == (
        "STATUS_ENABLED"
    )


def test_concurrent_archives_keep_one_workspace(server: Server, account: Tenant) -> None:
    client = server.client(account.api_key)
    ids = [account.workspace_id] + [create(client, f"W{n}") for n in range(5)]
    statuses: list[int] = []
    start = threading.Barrier(len(ids))

    def archive(workspace_id: str) -> None:
        with server.http(account.api_key) as http:
            start.wait()
            statuses.append(http.delete(f"/v1/account/workspaces/{workspace_id}").status_code)

    threads = [threading.Thread(target=archive, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * 5 + [400]
    assert len(client.accounts.retrieve().spec.workspaces) == 1


def test_another_accounts_workspace_is_not_found(server: Server, account: Tenant) -> None:
    other = make_account(server, name="Other", domain="other.io")
    theirs = server.client(other.api_key)
    their_id = create(theirs, "Theirs", team="x")
    before = theirs.workspace_admin.retrieve(workspace_id=their_id)

    mine = server.client(account.api_key)
    for call, kwargs in (
        (mine.workspace_admin.retrieve, {}),
        (mine.workspace_admin.update, {"metadata": {"name": "Stolen"}}),
        (mine.workspace_admin.archive, {}),
    ):
        error = refused(partial(call, workspace_id=their_id, **kwargs))
        assert (error.status_code, error.code) == (404, 5)
    assert theirs.workspace_admin.retrieve(workspace_id=their_id) == before
    assert their_id not in [w.metadata.id for w in mine.workspace_admin.list_account()]
    error = refused(partial(mine.workspace_admin.retrieve, workspace_id="workspace_nope"))
    assert (error.status_code, error.code) == (404, 5)


def test_v1_workspaces_lists_what_the_caller_reaches(server: Server, account: Tenant) -> None:
    admin = server.client(account.api_key)
    first = account.workspace_id
    second = create(admin, "Second", env="prod")
    third = create(admin, "Third", env="prod")
    archived = create(admin, "Gone", env="prod")
    member_id, member = member_client(server, account)
    assert member.workspaces.list().items == []
    for workspace_id in (second, archived):
        admin.workspace_admin.add_member(workspace_id=workspace_id, profile_id=member_id)
    admin.workspace_admin.archive(workspace_id=archived)
    assert [w.metadata.id for w in member.workspaces.list()] == [second]

    assert [w.metadata.id for w in admin.workspaces.list()] == [first, second, third]
    admin_jwt = server.client(jwt_for(server, account.admin_profile_id, account.id))
    assert [w.metadata.id for w in admin_jwt.workspaces.list(sort_order="desc")] == [
        third,
        second,
        first,
    ]
    page = admin.workspaces.list(limit=1, sort_order="desc", labels="env=prod", include_info=True)
    assert [w.metadata.id for w in page.items] == [third]
    assert [w.metadata.id for w in page] == [third, second]

    assigned = server.client(
        make_api_key(server, account, permissions=["workspaces:read"], workspace_ids=(third,))
    )
    assert [w.metadata.id for w in assigned.workspaces.list()] == [third]
    everywhere = server.client(
        make_api_key(server, account, permissions=["workspaces:read"], all_workspaces=True)
    )
    assert [w.metadata.id for w in everywhere.workspaces.list()] == [first, second, third]

    no_scopes = server.client(make_api_key(server, account, permissions=[], all_workspaces=True))
    error = refused(no_scopes.workspaces.list)
    assert (error.status_code, error.code) == (403, 7)

    http = server.http(account.api_key)
    assert http.get("/v1/workspaces", params={"sortOrder": "sideways"}).status_code == 400
    cursor = http.get("/v1/workspaces", params={"limit": 1}).json()["pagination"]["nextCursor"]
    response = http.get(
        "/v1/workspaces", params={"limit": 1, "cursor": cursor, "sortOrder": "desc"}
    )
    assert response.status_code == 400
    # A cursor is bound to the caller that received it.
    response = server.http(jwt_for(server, member_id, account.id)).get(
        "/v1/workspaces", params={"cursor": cursor}
    )
    assert response.status_code == 400


def test_a_label_filter_naming_one_key_twice_matches_nothing(
    server: Server, account: Tenant
) -> None:
    http = server.http(account.api_key)
    for labels, expected in (("env=prod,env=prod", 1), ("env=prod,env=dev", 0)):
        http.patch(
            f"/v1/account/workspaces/{account.workspace_id}",
            json={"metadata": {"labels": {"env": "prod"}}},
        )
        response = http.get("/v1/account/workspaces", params={"labels": labels})
        assert response.status_code == 200, response.text
        assert len(response.json()["items"]) == expected, labels
