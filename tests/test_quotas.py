"""Per-account quotas, and the largest account they allow answering within a bound
computed from them (a server of its own, its limits set low so the test stays fast)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from cadenya import Cadenya

from cadenya_server.auth import scopes
from cadenya_server.kit.labels import MAX_LABELS
from conftest import Server, Tenant, make_account
from helpers import refused, server_with

WORKSPACES, KEYS, WORKSPACES_PER_KEY, ENDPOINTS, PROFILES = 3, 3, 3, 2, 6
LIMITS = {
    "max_profiles_per_account": str(PROFILES),
    "max_workspaces_per_account": str(WORKSPACES),
    "max_api_keys_per_account": str(KEYS),
    "max_workspaces_per_api_key": str(WORKSPACES_PER_KEY),
    "max_trusted_endpoints_per_account": str(ENDPOINTS),
}

# The widest JSON each field can take, from the limits the API enforces on input: a
# string of n characters is at most 4n bytes of UTF-8 (control characters are refused,
# so nothing is escaped wider) plus its quotes; `OBJECT` covers a message's field names
# and punctuation.
OBJECT = 400


def text(characters: int) -> int:
    return 2 + 4 * characters


ID = text(40)
TIMESTAMP = text(30)
# Label keys are a DNS prefix of 253, a slash and a name of 63; values 63; ASCII only.
LABELS = 2 + MAX_LABELS * (2 + 253 + 1 + 63 + 1 + 2 + 63 + 1)
METADATA = OBJECT + 3 * ID + 2 * text(200) + LABELS + TIMESTAMP
WORKSPACE = OBJECT + METADATA + text(4000) + 4 * 20
PROFILE = OBJECT + METADATA + text(320) + text(200)
PERMISSIONS = 2 + sum(len(scope) + 3 for scope in scopes.VALID)


def api_key_bytes(*, reaches: int, assigned: int) -> int:
    """The widest API key that embeds `reaches` workspaces and `assigned` assignments."""
    spec = OBJECT + text(80) + text(4000) + PERMISSIONS + assigned * (OBJECT + ID)
    info = OBJECT + PROFILE + reaches * (METADATA + 1) + TIMESTAMP
    return OBJECT + METADATA + spec + info


def account_bytes() -> int:
    """GET /v1/account: the account's own fields (set by the operator) and its workspaces."""
    own = OBJECT + METADATA + text(320) + text(4000) + text(253) + 2 * text(100)
    return own + WORKSPACES * (WORKSPACE + 1)


def list_bytes(keys: int) -> int:
    """A page of keys, each reaching every workspace and assigned the most it may be."""
    key = api_key_bytes(reaches=WORKSPACES, assigned=WORKSPACES_PER_KEY)
    return OBJECT + keys * (key + 1)


def widest_metadata(n: int) -> dict[str, object]:
    """Metadata at every limit: 200 four-byte characters, 64 labels of the widest shape."""
    prefix = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    assert len(prefix) == 253
    labels = {f"{prefix}/{i:02d}{'k' * 61}": "v" * 63 for i in range(MAX_LABELS)}
    widest = "𝄞" * 197 + f"{n:03d}"
    return {"name": widest, "externalId": widest, "labels": labels}


WIDEST_DESCRIPTION = "𝄞" * 4000


# One process for the module: each test makes accounts of its own on it.
@pytest.fixture(scope="module")
def quota_server(server: Server) -> Iterator[str]:
    with server_with(server, **LIMITS) as base_url:
        yield base_url


def refused_for_quota(call: Callable[[], object], setting: str) -> None:
    assert setting in refused(call, 400, 9).message


def test_quotas_refuse_with_failed_precondition_naming_the_limit(
    server: Server, quota_server: str
) -> None:
    tenant = make_account(server)
    admin = Cadenya(api_key=tenant.api_key, base_url=quota_server)
    spaces = admin.workspace_admin
    created = [
        spaces.create(metadata={"name": f"w{n}"}, spec={}).metadata.id
        for n in range(WORKSPACES - 1)
    ]
    refused_for_quota(
        lambda: spaces.create(metadata={"name": "one too many"}, spec={}),
        "CADENYA_SERVER_MAX_WORKSPACES_PER_ACCOUNT",
    )
    keys = admin.api_keys
    held = [{"workspaceId": w} for w in [tenant.workspace_id, *created]]
    key = keys.create(
        metadata={"name": "assigned"}, spec={"permissions": [], "workspaceAssignments": held}
    )
    # Archiving makes room; the archived one still counts toward the key's assignments.
    spaces.archive(workspace_id=created[-1])
    fresh = spaces.create(metadata={"name": "in its place"}, spec={}).metadata.id
    refused_for_quota(
        lambda: keys.add_workspace(key.metadata.id, workspace_id=fresh),
        "CADENYA_SERVER_MAX_WORKSPACES_PER_API_KEY",
    )
    too_many = {"permissions": [], "workspaceAssignments": [*held, {"workspaceId": fresh}]}
    refused_for_quota(
        lambda: keys.update(key.metadata.id, spec=too_many),
        "CADENYA_SERVER_MAX_WORKSPACES_PER_API_KEY",
    )
    refused_for_quota(
        lambda: keys.create(metadata={"name": "too wide"}, spec=too_many),
        "CADENYA_SERVER_MAX_WORKSPACES_PER_API_KEY",
    )
    keys.create(metadata={"name": "third"}, spec={"permissions": []})
    refused_for_quota(
        lambda: keys.create(metadata={"name": "fourth"}, spec={"permissions": []}),
        "CADENYA_SERVER_MAX_API_KEYS_PER_ACCOUNT",
    )

    # The admin, and three keys' profiles: two people fit, a third does not.
    http = httpx.Client(
        base_url=quota_server, headers={"Authorization": f"Bearer {tenant.api_key}"}, timeout=30
    )
    for n in range(3):
        added = http.post(
            "/v1/account/profiles",
            json={"metadata": {"name": f"p{n}"}, "spec": {"email": f"p{n}@acme.io"}},
        )
        assert added.status_code == (200 if n < 2 else 400), added.text
    assert added.json()["code"] == 9
    assert "CADENYA_SERVER_MAX_PROFILES_PER_ACCOUNT" in added.json()["message"]
    refused_for_quota(
        lambda: spaces.add_member(workspace_id=fresh, email="new@acme.io"),
        "CADENYA_SERVER_MAX_PROFILES_PER_ACCOUNT",
    )
    # A member who already has a profile takes no new place.
    spaces.add_member(workspace_id=fresh, email="p0@acme.io")

    endpoints = admin.trusted_endpoints
    for n in range(ENDPOINTS):
        endpoints.create(metadata={"name": f"e{n}"}, spec={"host": f"api{n}.example.com"})
    refused_for_quota(
        lambda: endpoints.create(metadata={"name": "e"}, spec={"host": "more.example.com"}),
        "CADENYA_SERVER_MAX_TRUSTED_ENDPOINTS_PER_ACCOUNT",
    )
    # Another account is not affected by this one's quotas.
    other = Cadenya(api_key=make_account(server).api_key, base_url=quota_server)
    other.workspace_admin.create(metadata={"name": "mine"}, spec={})


def fill_to_the_limits(tenant: Tenant, base_url: str) -> None:
    """Every workspace and key at its limits, every key assigned the most it may be."""
    admin = Cadenya(api_key=tenant.api_key, base_url=base_url)
    spaces = admin.workspace_admin
    spaces.update(
        workspace_id=tenant.workspace_id,
        metadata=widest_metadata(0),
        spec={"description": WIDEST_DESCRIPTION},
    )
    workspace_ids = [tenant.workspace_id] + [
        spaces.create(
            metadata=widest_metadata(n), spec={"description": WIDEST_DESCRIPTION}
        ).metadata.id
        for n in range(1, WORKSPACES)
    ]
    permissions = sorted(scopes.VALID - {scopes.ALL})
    for n in range(1, KEYS):
        admin.api_keys.create(
            metadata=widest_metadata(100 + n),
            spec={
                "description": WIDEST_DESCRIPTION,
                "permissions": permissions,
                "workspaceAssignments": [{"workspaceId": w} for w in workspace_ids],
            },
        )
    admin.api_keys.update(
        tenant.api_key_id, metadata=widest_metadata(100), spec={"description": WIDEST_DESCRIPTION}
    )


def test_the_largest_allowed_account_answers_within_a_bound(
    server: Server, quota_server: str
) -> None:
    tenant = make_account(server)
    fill_to_the_limits(tenant, quota_server)
    http = httpx.Client(
        base_url=quota_server, headers={"Authorization": f"Bearer {tenant.api_key}"}, timeout=30
    )

    listing = http.get("/v1/account/api_keys", params={"includeInfo": "true", "limit": 1000})
    assert listing.status_code == 200
    items = listing.json()["items"]
    assert len(items) == KEYS
    assert all(len(key["info"]["workspaces"]) == WORKSPACES for key in items)
    assert len(listing.content) <= list_bytes(KEYS)

    account = http.get("/v1/account")
    assert len(account.json()["spec"]["workspaces"]) == WORKSPACES
    assert len(account.content) <= account_bytes()

    # The official client decodes both.
    client = Cadenya(api_key=tenant.api_key, base_url=quota_server)
    assert len(client.accounts.retrieve().spec.workspaces) == WORKSPACES
    keys = client.api_keys.list(workspace_id=tenant.workspace_id, include_info=True, limit=1000)
    assert len(list(keys)) == KEYS


def test_a_page_of_keys_stops_at_its_byte_budget(server: Server) -> None:
    # A budget below one key's size: every page holds just one, and the cursor walks them all.
    budget = api_key_bytes(reaches=WORKSPACES, assigned=WORKSPACES_PER_KEY) // 4
    with server_with(server, **LIMITS, max_page_bytes=str(budget)) as base_url:
        tenant = make_account(server)
        fill_to_the_limits(tenant, base_url)
        http = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {tenant.api_key}"}, timeout=30
        )
        seen, cursor = [], ""
        while True:
            page = http.get(
                "/v1/account/api_keys",
                params={"includeInfo": "true", "limit": 1000, "cursor": cursor},
            ).json()
            assert len(page["items"]) == 1
            assert page["pagination"]["total"] == KEYS
            seen += [key["metadata"]["id"] for key in page["items"]]
            cursor = page["pagination"]["nextCursor"]
            if not cursor:
                break
        assert len(seen) == len(set(seen)) == KEYS
        client = Cadenya(api_key=tenant.api_key, base_url=base_url)
        keys = client.api_keys.list(workspace_id=tenant.workspace_id, include_info=True)
        assert [k.metadata.id for k in keys] == seen
