"""API keys through the official client and raw HTTP: every method, its refusals,
tenant isolation, escalation limits, last-use tracking and concurrent rotation."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from cadenya import Cadenya, types
from sqlalchemy import select

from cadenya_server.auth import api_key_tokens
from cadenya_server.kit.clock import as_utc, now
from cadenya_server.models import ApiKey, ApiKeyWorkspace, AuditEvent, Profile
from conftest import Server, Tenant, jwt_for, make_account, make_profile
from helpers import METADATA_FIELDS, refused

RFC3339_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
MASKED = re.compile(r"cdy_\*{8}[0-9A-Za-z]{4}")


def client(server: Server, token: str, workspace_id: str | None = None) -> Cadenya:
    return Cadenya(api_key=token, base_url=server.base_url, workspace_id=workspace_id)


def create_key(
    server: Server,
    tenant: Tenant,
    *,
    name: str = "ci key",
    permissions: tuple[str, ...] = ("api_keys:read",),
    all_workspaces: bool = False,
    workspace_ids: tuple[str, ...] = (),
    token: str | None = None,
    **metadata: Any,
) -> types.APIKey:
    return server.client(token or tenant.api_key).api_keys.create(
        metadata={"name": name, **metadata},
        spec={
            "permissions": list(permissions),
            "all_workspaces": all_workspaces,
            "workspace_assignments": [{"workspace_id": w} for w in workspace_ids],
        },
    )


def add_workspace(server: Server, tenant: Tenant, *, archived: bool = False) -> str:
    from cadenya_server.workspaces import repository

    with server.runtime.db.transaction() as session:
        workspace = repository.add(
            session,
            account_id=tenant.id,
            name="Another",
            creator_profile_id=tenant.admin_profile_id,
        )
        if archived:
            workspace.status = repository.ARCHIVED
        session.flush()
        return workspace.id


def profile_of(server: Server, token: str) -> str:
    """The profile a token acts as (for an API key, the key's own profile)."""
    return server.client(token).profiles.whoami().profile.metadata.id


def whoami_status(server: Server, token: str) -> int:
    with server.http(token) as http:
        return http.get("/v1/whoami").status_code


def snapshot(server: Server, api_key_id: str) -> tuple[object, ...]:
    """Everything about a key a refused call must leave alone, its audit trail included."""
    with server.runtime.db.transaction(write=False) as session:
        key = session.get(ApiKey, api_key_id)
        assert key is not None
        assigned = sorted(
            session.scalars(
                select(ApiKeyWorkspace.workspace_id).where(ApiKeyWorkspace.api_key_id == key.id)
            )
        )
        events = len(
            list(session.scalars(select(AuditEvent.id).where(AuditEvent.resource_id == key.id)))
        )
        return (
            key.name,
            key.description,
            key.external_id,
            dict(key.labels),
            key.token_hash,
            key.enabled,
            list(key.permissions),
            key.all_workspaces,
            assigned,
            events,
        )


def audit_actions(server: Server, resource_id: str) -> list[str]:
    with server.runtime.db.transaction(write=False) as session:
        return sorted(
            session.scalars(select(AuditEvent.action).where(AuditEvent.resource_id == resource_id))
        )


# Create, read, and the token's visibility


def test_create_shows_the_token_once_and_masks_it_elsewhere(
    server: Server, account: Tenant
) -> None:
    created = create_key(
        server,
        account,
        name="Deploy bot",
        permissions=("api_keys:read", "api_keys:manage", "workspaces:read"),
        workspace_ids=(account.workspace_id,),
        external_id="ext-1",
        labels={"team": "core", "cadenya.com/env": "prod"},
    )
    assert api_key_tokens.well_formed(created.spec.token)
    assert re.fullmatch(r"apikey_[0-9A-HJKMNP-TV-Z]{26}", created.metadata.id)
    assert created.metadata.name == "Deploy bot"
    assert created.metadata.external_id == "ext-1"
    assert created.metadata.labels == {"team": "core", "cadenya.com/env": "prod"}
    # Created by the caller: here the account's default key, acting as its own profile.
    creator = profile_of(server, account.api_key)
    assert created.metadata.profile_id == creator
    # Stored in the normal form: manage implies read.
    assert created.spec.permissions == ["api_keys:manage", "workspaces:read"]
    assert created.spec.all_workspaces is False
    assert [a.workspace_id for a in created.spec.workspace_assignments] == [account.workspace_id]
    assert created.spec.default is False
    assert created.state == "STATE_ENABLED"
    assert created.info is not None and created.info.created_by is not None
    assert created.info.created_by.metadata.id == creator
    assert [w.id for w in created.info.workspaces or []] == [account.workspace_id]

    fetched = server.client(account.api_key).api_keys.retrieve(created.metadata.id)
    assert MASKED.fullmatch(fetched.spec.token)
    assert fetched.spec.token.endswith(created.spec.token[-4:])
    assert fetched.metadata == created.metadata
    listed = client(server, account.api_key, account.workspace_id).api_keys.list()
    assert all(MASKED.fullmatch(k.spec.token) for k in listed.items)

    me = server.client(created.spec.token).profiles.whoami()
    assert me.profile.spec.type == "PROFILE_TYPE_API_KEY"
    assert me.profile.spec.name == "Deploy bot"
    assert me.profile.metadata.labels == {"team": "core", "cadenya.com/env": "prod"}
    assert audit_actions(server, created.metadata.id) == ["api_key.create"]


def test_every_field_of_the_raw_json(server: Server, account: Tenant) -> None:
    created = create_key(server, account)
    with server.http(account.api_key) as http:
        body = http.get(f"/v1/account/api_keys/{created.metadata.id}").json()
        listed = http.get(
            "/v1/account/api_keys", params={"workspaceId": account.workspace_id}
        ).json()
    assert set(body) == {"metadata", "spec", "state", "info"}
    assert set(body["metadata"]) == METADATA_FIELDS
    assert RFC3339_MS.fullmatch(body["metadata"]["createdAt"])
    assert body["spec"] == {
        "token": body["spec"]["token"],
        "description": "",
        "permissions": ["api_keys:read"],
        "allWorkspaces": False,
        "workspaceAssignments": [],
        "default": False,
    }
    assert set(body["info"]) == {"createdBy", "workspaces", "lastUsedAt"}
    assert body["info"]["createdBy"]["spec"]["type"] == "PROFILE_TYPE_API_KEY"
    assert body["info"]["lastUsedAt"] == ""
    assert set(listed) == {"items", "pagination"}
    assert set(listed["pagination"]) == {"nextCursor", "total"}


def test_listing_without_include_info_keeps_info_present_but_empty(
    server: Server, account: Tenant
) -> None:
    created = create_key(server, account, workspace_ids=(account.workspace_id,))
    with server.http(account.api_key) as http:
        plain = http.get(
            "/v1/account/api_keys", params={"workspaceId": account.workspace_id}
        ).json()
    for item in plain["items"]:
        created_by = item["info"]["createdBy"]
        assert created_by["metadata"]["id"] == ""
        assert created_by["metadata"]["createdAt"] == "1970-01-01T00:00:00.000Z"
        assert created_by["spec"] == {"type": "PROFILE_TYPE_UNSPECIFIED", "email": "", "name": ""}
        assert item["info"]["workspaces"] == []

    keys = client(server, account.api_key, account.workspace_id).api_keys
    bare = keys.list().items
    assert all(k.info and k.info.created_by and k.info.created_by.metadata.id == "" for k in bare)
    full = keys.list(include_info=True).items
    assert {
        k.metadata.id: k.info.created_by.metadata.id for k in full if k.info and k.info.created_by
    } == {
        account.api_key_id: account.admin_profile_id,
        created.metadata.id: profile_of(server, account.api_key),
    }
    assert all([w.id for w in k.info.workspaces or []] == [account.workspace_id] for k in full)


def test_a_deleted_creator_leaves_an_empty_created_by(server: Server, account: Tenant) -> None:
    maker = create_key(server, account, permissions=("api_keys:manage",), all_workspaces=True)
    maker_profile = profile_of(server, maker.spec.token)
    made = create_key(server, account, token=maker.spec.token)
    assert made.info is not None and made.info.created_by is not None
    assert made.info.created_by.metadata.id == maker_profile
    server.client(account.api_key).api_keys.delete(maker.metadata.id)
    got = server.client(account.api_key).api_keys.retrieve(made.metadata.id)
    assert got.info is not None and got.info.created_by is not None
    assert got.info.created_by.metadata.id == ""
    assert got.info.created_by.spec.type == "PROFILE_TYPE_UNSPECIFIED"
    assert got.metadata.profile_id == maker_profile


# Listing


def test_listing_filters_orders_and_pages(server: Server) -> None:
    tenant = make_account(server)
    other_workspace = add_workspace(server, tenant)
    alpha = create_key(
        server, tenant, name="Alpha Zoë", workspace_ids=(tenant.workspace_id,), labels={"t": "a"}
    )
    beta = create_key(server, tenant, name="beta", labels={"t": "b"})
    server.client(tenant.api_key).api_keys.update(
        beta.metadata.id,
        spec={"description": "Rotates ZOË's secrets"},
        update_mask="spec.description",
    )
    gamma = create_key(server, tenant, name="ALPHA two", workspace_ids=(other_workspace,))
    everywhere = tenant.api_key_id  # the account's default key reaches every workspace

    def ids(workspace_id: str, **params: Any) -> list[str]:
        page = client(server, tenant.api_key, workspace_id).api_keys.list(**params)
        return [k.metadata.id for k in page]

    assert ids(tenant.workspace_id) == [everywhere, alpha.metadata.id]
    assert ids(other_workspace) == [everywhere, gamma.metadata.id]
    assert ids(tenant.workspace_id, sort_order="desc") == [alpha.metadata.id, everywhere]
    assert ids(other_workspace, prefix="alpha") == [gamma.metadata.id]
    assert ids(other_workspace, prefix="lpha") == []

    with server.http(tenant.api_key) as http:

        def everything(**params: Any) -> list[str]:
            body = http.get("/v1/account/api_keys", params=params).json()
            return [k["metadata"]["id"] for k in body["items"]]

        assert everything() == [everywhere, alpha.metadata.id, beta.metadata.id, gamma.metadata.id]
        # Case-insensitive over name and description, non-ASCII included.
        assert everything(query="zoë") == [alpha.metadata.id, beta.metadata.id]
        assert everything(query="ZOË", prefix="alpha") == [alpha.metadata.id]
        assert everything(query="100%") == []
        assert everything(labels="t=b") == [beta.metadata.id]
        # Every page once, in order, with the total on each page.
        seen: list[str] = []
        cursor = ""
        while True:
            body = http.get(
                "/v1/account/api_keys", params={"limit": 3, "cursor": cursor, "sortOrder": "desc"}
            ).json()
            assert body["pagination"]["total"] == 4
            seen += [k["metadata"]["id"] for k in body["items"]]
            cursor = body["pagination"]["nextCursor"]
            if not cursor:
                break
        assert seen == [gamma.metadata.id, beta.metadata.id, alpha.metadata.id, everywhere]

        page = http.get("/v1/account/api_keys", params={"limit": 1, "query": "zoë"}).json()
        assert page["pagination"]["total"] == 2
        # A cursor belongs to its query.
        other = http.get(
            "/v1/account/api_keys", params={"cursor": page["pagination"]["nextCursor"]}
        )
        assert other.status_code == 400 and other.json()["code"] == 3
        for params in (
            {"limit": -1},
            {"sortOrder": "sideways"},
            {"labels": "nope"},
            {"cursor": "garbage"},
        ):
            response = http.get("/v1/account/api_keys", params=params)
            assert response.status_code == 400, params
    stranger = make_account(server)
    refused(lambda: ids(stranger.workspace_id), 404, 5)


# Changes


def test_update_with_a_mask_changes_only_the_named_fields(server: Server, account: Tenant) -> None:
    key = create_key(server, account, name="before", labels={"a": "1"}, external_id="x")
    keys = server.client(account.api_key).api_keys
    updated = keys.update(
        key.metadata.id,
        metadata={"name": "after", "labels": {"b": "2"}},
        spec={"description": "ignored", "all_workspaces": True, "workspace_assignments": []},
        update_mask="metadata.name,metadata.labels",
    )
    assert updated.metadata.name == "after"
    assert updated.metadata.labels == {"b": "2"}
    assert updated.metadata.external_id == "x"
    assert updated.spec.description == ""
    assert updated.spec.all_workspaces is False
    assert MASKED.fullmatch(updated.spec.token)
    # A named field missing from the body is reset.
    cleared = keys.update(
        key.metadata.id, metadata={"name": "after"}, update_mask="metadata.labels"
    )
    assert cleared.metadata.labels == {}
    # The key's profile follows its name, so profile search finds the key by it.
    found = server.client(account.api_key).workspace_admin.list_profiles(query="after")
    assert [(p.metadata.id, p.spec.type) for p in found.items] == [
        (profile_of(server, key.spec.token), "PROFILE_TYPE_API_KEY")
    ]
    assert audit_actions(server, key.metadata.id) == [
        "api_key.create",
        "api_key.update",
        "api_key.update",
    ]


def test_update_without_a_mask_changes_the_fields_present(server: Server, account: Tenant) -> None:
    second = add_workspace(server, account)
    key = create_key(server, account, workspace_ids=(account.workspace_id,))
    updated = server.client(account.api_key).api_keys.update(
        key.metadata.id,
        spec={
            "description": "nightly jobs",
            "permissions": ["workspaces:manage", "workspaces:read"],
            "all_workspaces": False,
            "workspace_assignments": [{"workspace_id": second}],
        },
    )
    assert updated.metadata.name == "ci key"
    assert updated.spec.description == "nightly jobs"
    assert updated.spec.permissions == ["workspaces:manage"]
    assert [a.workspace_id for a in updated.spec.workspace_assignments] == [second]
    everywhere = server.client(account.api_key).api_keys.update(
        key.metadata.id, spec={"all_workspaces": True, "workspace_assignments": []}
    )
    assert everywhere.spec.all_workspaces is True
    assert everywhere.spec.workspace_assignments == []
    assert {w.id for w in everywhere.info.workspaces or []} == {account.workspace_id, second}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"updateMask": "spec.token"}, "updateMask"),
        ({"updateMask": "metadata.id"}, "updateMask"),
        ({"updateMask": "metadata.name", "metadata": {"name": ""}}, "metadata.name"),
        ({"spec": {"permissions": ["root"]}}, "spec.permissions"),
        ({"metadata": {"name": "x", "labels": {"bad key!": "v"}}}, "metadata.labels[bad key!]"),
        (
            {
                "spec": {
                    "allWorkspaces": True,
                    "workspaceAssignments": [{"workspaceId": "workspace_" + "0" * 26}],
                }
            },
            "spec.workspaceAssignments",
        ),
        ({"spec": {"token": "cdy_mine"}}, "spec.token"),
    ],
)
def test_bad_updates_are_400_and_change_nothing(
    server: Server, account: Tenant, body: dict[str, Any], field: str
) -> None:
    key = create_key(server, account)
    before = snapshot(server, key.metadata.id)
    with server.http(account.api_key) as http:
        response = http.patch(f"/v1/account/api_keys/{key.metadata.id}", json=body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["code"] == 3
    assert error["details"][0]["fieldViolations"][0]["field"] == field
    assert snapshot(server, key.metadata.id) == before


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"metadata": {"name": ""}, "spec": {}}, 400),
        ({"metadata": {"name": "x"}, "spec": {"permissions": ["agents:write"]}}, 400),
        ({"metadata": {"name": "x", "labels": {"k": "v" * 64}}, "spec": {}}, 400),
        ({"metadata": {"name": "x"}, "spec": {"default": True}}, 400),
        # A malformed id is refused for its shape, a well-formed unknown one as not found.
        (
            {
                "metadata": {"name": "x"},
                "spec": {"workspaceAssignments": [{"workspaceId": "nope"}]},
            },
            400,
        ),
        (
            {
                "metadata": {"name": "x"},
                "spec": {"workspaceAssignments": [{"workspaceId": "workspace_" + "0" * 26}]},
            },
            404,
        ),
        ({"spec": {}}, 400),
    ],
)
def test_bad_creates_are_refused_and_create_nothing(
    server: Server, body: dict[str, Any], status: int
) -> None:
    tenant = make_account(server)
    with server.http(tenant.api_key) as http:
        response = http.post("/v1/account/api_keys", json=body)
        assert response.status_code == status, response.text
        listed = http.get("/v1/account/api_keys").json()
    assert [k["metadata"]["id"] for k in listed["items"]] == [tenant.api_key_id]


def test_rotate_replaces_the_token_at_once(server: Server, account: Tenant) -> None:
    key = create_key(server, account)
    rotated = server.client(account.api_key).api_keys.rotate(key.metadata.id)
    assert api_key_tokens.well_formed(rotated.spec.token)
    assert rotated.spec.token != key.spec.token
    assert whoami_status(server, key.spec.token) == 401
    assert whoami_status(server, rotated.spec.token) == 200
    assert (
        server.client(account.api_key)
        .api_keys.retrieve(key.metadata.id)
        .spec.token.endswith(rotated.spec.token[-4:])
    )
    assert audit_actions(server, key.metadata.id) == ["api_key.create", "api_key.rotate"]


def test_reveal_returns_the_current_token(server: Server, account: Tenant) -> None:
    key = create_key(server, account)
    keys = server.client(account.api_key).api_keys
    assert keys.reveal(key.metadata.id).spec.token == key.spec.token
    rotated = keys.rotate(key.metadata.id)
    assert keys.reveal(key.metadata.id).spec.token == rotated.spec.token
    assert audit_actions(server, key.metadata.id).count("api_key.reveal") == 2


def test_disable_and_enable(server: Server, account: Tenant) -> None:
    key = create_key(server, account)
    keys = server.client(account.api_key).api_keys
    assert keys.disable(key.metadata.id).state == "STATE_DISABLED"
    assert whoami_status(server, key.spec.token) == 401
    assert keys.disable(key.metadata.id).state == "STATE_DISABLED"
    assert keys.retrieve(key.metadata.id).state == "STATE_DISABLED"
    assert keys.enable(key.metadata.id).state == "STATE_ENABLED"
    assert whoami_status(server, key.spec.token) == 200
    # Repeating a state change is no change: audited once each.
    assert audit_actions(server, key.metadata.id) == [
        "api_key.create",
        "api_key.disable",
        "api_key.enable",
    ]


def test_add_and_remove_workspaces(server: Server, account: Tenant) -> None:
    second = add_workspace(server, account)
    archived = add_workspace(server, account, archived=True)
    foreign = make_account(server).workspace_id
    key = create_key(server, account)
    keys = server.client(account.api_key).api_keys
    added = keys.add_workspace(key.metadata.id, workspace_id=second)
    assert [a.workspace_id for a in added.spec.workspace_assignments] == [second]
    assert [w.id for w in added.info.workspaces or []] == [second]
    again = keys.add_workspace(key.metadata.id, workspace_id=second)
    assert [a.workspace_id for a in again.spec.workspace_assignments] == [second]
    both = keys.add_workspace(key.metadata.id, workspace_id=account.workspace_id)
    assert {a.workspace_id for a in both.spec.workspace_assignments} == {
        second,
        account.workspace_id,
    }
    before = snapshot(server, key.metadata.id)
    refused(lambda: keys.add_workspace(key.metadata.id, workspace_id=foreign), 404, 5)
    refused(lambda: keys.add_workspace(key.metadata.id, workspace_id=archived), 400, 9)
    refused(lambda: keys.remove_workspace(key.metadata.id, workspace_id=foreign), 404, 5)
    assert snapshot(server, key.metadata.id) == before
    removed = keys.remove_workspace(key.metadata.id, workspace_id=second)
    assert [a.workspace_id for a in removed.spec.workspace_assignments] == [account.workspace_id]
    keys.remove_workspace(key.metadata.id, workspace_id=second)
    assert sorted(audit_actions(server, key.metadata.id)) == [
        "api_key.add_workspace",
        "api_key.add_workspace",
        "api_key.create",
        "api_key.remove_workspace",
    ]
    everywhere = create_key(server, account, all_workspaces=True)
    refused(lambda: keys.add_workspace(everywhere.metadata.id, workspace_id=second), 400, 9)
    refused(lambda: keys.remove_workspace(everywhere.metadata.id, workspace_id=second), 400, 9)


def test_delete_removes_the_key_and_its_profile(server: Server, account: Tenant) -> None:
    key = create_key(server, account)
    profile_id = profile_of(server, key.spec.token)
    keys = server.client(account.api_key).api_keys
    keys.delete(key.metadata.id)
    assert whoami_status(server, key.spec.token) == 401
    refused(lambda: keys.retrieve(key.metadata.id), 404, 5)
    refused(lambda: keys.delete(key.metadata.id), 404, 5)
    with server.runtime.db.transaction(write=False) as session:
        assert session.get(Profile, profile_id) is None
        assert session.get(ApiKey, key.metadata.id) is None
    assert audit_actions(server, key.metadata.id) == ["api_key.create", "api_key.delete"]


def test_a_key_cannot_disable_or_delete_itself(server: Server, account: Tenant) -> None:
    key = create_key(server, account, permissions=("api_keys:manage",))
    own = server.client(key.spec.token).api_keys
    before = snapshot(server, key.metadata.id)
    for call in (lambda: own.disable(key.metadata.id), lambda: own.delete(key.metadata.id)):
        error = refused(call, 400, 9)
        assert "locked out" in error.message
    assert snapshot(server, key.metadata.id) == before
    assert whoami_status(server, key.spec.token) == 200
    # It may still rotate itself (the new token is in the answer), and another
    # administrator may disable or delete it.
    admin = server.client(account.api_key).api_keys
    assert admin.disable(key.metadata.id).state == "STATE_DISABLED"
    admin.delete(key.metadata.id)
    assert whoami_status(server, key.spec.token) == 401


def test_a_verb_is_never_read_as_part_of_an_id(server: Server, account: Tenant) -> None:
    key = create_key(server, account)
    before = snapshot(server, key.metadata.id)
    with server.http(account.api_key) as http:
        assert http.get(f"/v1/account/api_keys/{key.metadata.id}:rotate").status_code == 404
        assert (
            http.patch(f"/v1/account/api_keys/{key.metadata.id}:rotate", json={}).status_code == 404
        )
        assert http.delete(f"/v1/account/api_keys/{key.metadata.id}:disable").status_code == 404
        bogus = http.post(f"/v1/account/api_keys/{key.metadata.id}:explode")
        assert bogus.status_code in (404, 405)
        assert (
            http.post(f"/v1/account/api_keys/{key.metadata.id}:rotate", json={"x": 1}).status_code
            == 400
        )
        assert snapshot(server, key.metadata.id) == before
        rotated = http.post(f"/v1/account/api_keys/{key.metadata.id}:rotate", json={})
    assert rotated.status_code == 200
    assert rotated.json()["metadata"]["id"] == key.metadata.id
    assert snapshot(server, key.metadata.id) != before


# Who may do what


def every_call(keys: Any, api_key_id: str, workspace_id: str) -> list[Callable[[], object]]:
    """Every id-taking method of client.api_keys, against one key."""
    return [
        lambda: keys.retrieve(api_key_id),
        lambda: keys.update(api_key_id, metadata={"name": "taken"}, update_mask="metadata.name"),
        lambda: keys.rotate(api_key_id),
        lambda: keys.reveal(api_key_id),
        lambda: keys.disable(api_key_id),
        lambda: keys.enable(api_key_id),
        lambda: keys.add_workspace(api_key_id, workspace_id=workspace_id),
        lambda: keys.remove_workspace(api_key_id, workspace_id=workspace_id),
        lambda: keys.delete(api_key_id),
    ]


def test_another_account_gets_404_for_every_id_and_changes_nothing(server: Server) -> None:
    victim, intruder = make_account(server), make_account(server)
    key = create_key(server, victim, workspace_ids=(victim.workspace_id,))
    before = snapshot(server, key.metadata.id)
    keys = server.client(intruder.api_key).api_keys
    for call in every_call(keys, key.metadata.id, intruder.workspace_id):
        refused(call, 404, 5)
    for call in every_call(keys, key.metadata.id, victim.workspace_id):
        refused(call, 404, 5)
    listed = client(server, intruder.api_key, intruder.workspace_id).api_keys.list()
    assert key.metadata.id not in [k.metadata.id for k in listed]
    assert snapshot(server, key.metadata.id) == before
    assert whoami_status(server, key.spec.token) == 200


def test_a_member_may_not_touch_api_keys(server: Server, account: Tenant) -> None:
    member = make_profile(server, account.id, name="Mo Member", email="mo@acme.io")
    token = jwt_for(server, member, account.id)
    key = create_key(server, account)
    before = snapshot(server, key.metadata.id)
    keys = client(server, token, account.workspace_id).api_keys
    refused(lambda: keys.list(), 403, 7)
    refused(lambda: create_key(server, account, token=token), 403, 7)
    for call in every_call(keys, key.metadata.id, account.workspace_id):
        refused(call, 403, 7)
    assert snapshot(server, key.metadata.id) == before


def test_a_read_only_key_reads_but_changes_nothing(server: Server, account: Tenant) -> None:
    reader = create_key(server, account, permissions=("api_keys:read",))
    key = create_key(server, account)
    before = snapshot(server, key.metadata.id)
    keys = client(server, reader.spec.token, account.workspace_id).api_keys
    assert keys.retrieve(key.metadata.id).metadata.id == key.metadata.id
    # The list is of the client's workspace, which the unassigned key does not reach.
    assert [k.metadata.id for k in keys.list()] == [account.api_key_id]
    refused(lambda: create_key(server, account, token=reader.spec.token), 403, 7)
    for call in every_call(keys, key.metadata.id, account.workspace_id)[1:]:
        refused(call, 403, 7)
    assert snapshot(server, key.metadata.id) == before
    none = create_key(server, account, permissions=())
    refused(lambda: server.client(none.spec.token).api_keys.retrieve(key.metadata.id), 403, 7)


def test_a_key_cannot_grant_more_than_its_holder_has(server: Server, account: Tenant) -> None:
    second = add_workspace(server, account)
    manager = create_key(
        server,
        account,
        permissions=("api_keys:manage", "workspaces:read"),
        workspace_ids=(account.workspace_id,),
    )
    keys = server.client(manager.spec.token).api_keys

    def make(**kwargs: Any) -> types.APIKey:
        return create_key(server, account, token=manager.spec.token, **kwargs)

    for permissions in (("*",), ("account:manage",), ("workspaces:manage",)):
        refused(lambda p=permissions: make(permissions=p), 403, 7)
    refused(lambda: make(all_workspaces=True), 403, 7)
    refused(lambda: make(workspace_ids=(second,)), 403, 7)
    weaker = make(permissions=("workspaces:read",), workspace_ids=(account.workspace_id,))
    assert weaker.spec.permissions == ["workspaces:read"]
    # Nor may it widen a key it manages, or itself.
    refused(
        lambda: keys.update(
            weaker.metadata.id, spec={"permissions": ["*"]}, update_mask="spec.permissions"
        ),
        403,
        7,
    )
    refused(lambda: keys.add_workspace(weaker.metadata.id, workspace_id=second), 403, 7)
    refused(lambda: keys.add_workspace(manager.metadata.id, workspace_id=second), 403, 7)
    # A stronger key is out of its reach altogether: no reveal, no rotation, no deletion.
    before = snapshot(server, account.api_key_id)
    for call in every_call(keys, account.api_key_id, account.workspace_id)[1:]:
        refused(call, 403, 7)
    assert snapshot(server, account.api_key_id) == before
    assert keys.retrieve(account.api_key_id).spec.default is True
    assert keys.rotate(weaker.metadata.id).spec.token != weaker.spec.token


# Last use


def last_used(server: Server, api_key_id: str) -> Any:
    with server.runtime.db.transaction(write=False) as session:
        key = session.get(ApiKey, api_key_id)
        assert key is not None
        return key.last_used_at


def noted_use(server: Server, api_key_id: str, *, after: datetime) -> datetime:
    """The key's last use once it is later than `after`: it is noted after the response."""
    deadline = time.monotonic() + 10
    while (used := last_used(server, api_key_id)) is None or as_utc(used) <= after:
        assert time.monotonic() < deadline, f"last use still {used}"
        time.sleep(0.05)
    return as_utc(used)


def set_last_used(server: Server, api_key_id: str, value: Any) -> None:
    with server.runtime.db.transaction() as session:
        key = session.get(ApiKey, api_key_id)
        assert key is not None
        key.last_used_at = value


def test_last_use_is_recorded_without_a_write_per_request(server: Server, account: Tenant) -> None:
    key = create_key(server, account)
    assert last_used(server, key.metadata.id) is None
    started = now()
    assert whoami_status(server, key.spec.token) == 200
    first = noted_use(server, key.metadata.id, after=started - timedelta(seconds=1))
    for _ in range(5):
        assert whoami_status(server, key.spec.token) == 200
    assert as_utc(last_used(server, key.metadata.id)) == first
    with server.http(account.api_key) as http:
        raw = http.get(f"/v1/account/api_keys/{key.metadata.id}").json()
    assert RFC3339_MS.fullmatch(raw["info"]["lastUsedAt"])
    # Once the noted use is older than the resolution, the next use moves it.
    stale = now() - timedelta(minutes=5)
    set_last_used(server, key.metadata.id, stale)
    assert whoami_status(server, key.spec.token) == 200
    noted_use(server, key.metadata.id, after=stale + timedelta(minutes=4))
    # Refused calls still count as uses of a valid key; unknown tokens touch nothing.
    set_last_used(server, key.metadata.id, stale)
    with server.http(key.spec.token) as http:
        assert http.post("/v1/account/api_keys", json={}).status_code in (400, 403)
    noted_use(server, key.metadata.id, after=stale + timedelta(minutes=4))


# Concurrency


def test_simultaneous_rotations_leave_exactly_one_valid_token(
    server: Server, account: Tenant
) -> None:
    key = create_key(server, account)
    barrier = threading.Barrier(6)
    tokens: list[str] = []
    errors: list[BaseException] = []

    def rotate() -> None:
        try:
            keys = server.client(account.api_key).api_keys
            barrier.wait()
            tokens.append(keys.rotate(key.metadata.id).spec.token)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=rotate) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(set(tokens)) == 6
    valid = [t for t in [key.spec.token, *tokens] if whoami_status(server, t) == 200]
    assert len(valid) == 1
    assert server.client(account.api_key).api_keys.reveal(key.metadata.id).spec.token == valid[0]
    assert audit_actions(server, key.metadata.id).count("api_key.rotate") == 6
