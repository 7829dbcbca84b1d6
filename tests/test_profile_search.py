"""GET /v1/account/profiles against a brute-force model of the same rows (search_model).

One account holds a curated set of awkward profiles over about a thousand
realistic ones, so the limit rules can be seen and broad queries span pages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, timedelta, timezone
from types import SimpleNamespace

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cadenya_server import demo_data
from cadenya_server.api_keys import service as api_keys
from cadenya_server.profiles import importer
from cadenya_server.profiles.schemas import WIRE_TYPES, Profile, ProfileList
from conftest import Server, Tenant, jwt_for, make_account, make_profile
from helpers import METADATA_FIELDS
from search_model import PATH, Row, expected, label_filter, rows_of, walk

RFC3339_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
FILLER = 1100

# name, email, stored type, labels
CURATED: list[tuple[str, str, str, dict[str, str]]] = [
    ("Zoë Ärger", "zoe@zoë-design.eu", "user", {"team": "core", "env": "prod"}),
    ("ZOË SHOUTS", "shouts@example.com", "user", {"team": "core"}),
    ("łukasz Nowak", "lukasz@example.pl", "user", {"cadenya.com/team": "x"}),
    ("Ελένη Παπαδοπούλου", "eleni@example.gr", "user", {"cadenya.com/team": "x", "env": "prod"}),
    ("Анна Смирнова", "anna@example.ru", "user", {}),
    ("100% Pure", "pure@example.com", "user", {}),
    ("100 Pure", "pure100@example.com", "user", {}),
    ("under_score", "us@example.com", "user", {}),
    ("underXscore", "ux@example.com", "user", {}),
    ("back\\slash", "bs@example.com", "user", {}),
    ("backslash", "nobs@example.com", "user", {}),
    ("Percent Mail", "per%cent@example.com", "user", {}),
    ("Upper Mail", "Shouting.Upper@EXAMPLE.com", "user", {}),
    ("Cross Over", "field@example.com", "user", {}),
    ("bob", "bob1@example.com", "user", {"env": "prod"}),
    ("Bob", "bob2@example.com", "user", {"env": "prod"}),
    ("BOB", "bob3@example.com", "user", {}),
    ("Bobby", "bob4@example.com", "user", {}),
    ("", "nameless@example.com", "user", {}),
    ("Nightly Sync", "sync@system.local", "system", {"team": "core"}),
    ("Billing Cron", "", "system", {}),
]


@dataclass(frozen=True)
class Catalog:
    tenant: Tenant
    rows: list[Row]
    http: httpx.Client


@pytest.fixture(scope="module")
def catalog(server: Server) -> Catalog:
    tenant = make_account(server, name="Search Co", domain="search.test")
    importer.import_records(
        db=server.runtime.db,
        account_id=tenant.id,
        records=enumerate(demo_data.profiles(FILLER), start=1),
    )
    for name, email, kind, labels in CURATED:
        make_profile(server, tenant.id, name=name, email=email, type=kind, labels=labels)
    with server.runtime.db.transaction() as session:
        for name in ("ci key", "Deploy Key"):
            api_keys.issue(
                session=session,
                keyring=server.runtime.keyring,
                account_id=tenant.id,
                name=name,
                permissions=["workspaces:read"],
                creator_profile_id=tenant.admin_profile_id,
            )
    return Catalog(tenant, rows_of(server, tenant.id), server.http(tenant.api_key))


def names(items: list[dict]) -> list[str]:
    return [item["spec"]["name"] for item in items]


def assert_invalid(response: httpx.Response) -> dict:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == 3
    assert isinstance(body["message"], str) and body["message"]
    return body


@pytest.mark.parametrize(
    "query",
    [
        "",
        "ada",
        "ADA",
        "@example.com",
        "EXAMPLE.COM",
        "shouting.upper",
        "son",
        "zoë",
        "ZOË",
        "zoë ä",
        "ÄRGER",
        "zoe",
        "ŁUKASZ",
        "ελένη",
        "ΠΑΠΑΔΟΠΟΎΛΟΥ",
        "АННА",
        "смирнова",
        "%",
        "_",
        "\\",
        " ",
        "overfield",
        "over\nfield",
        "nobody-has-this-text",
    ],
)
def test_query_matches_the_model(catalog: Catalog, query: str) -> None:
    got = walk(catalog.http, query=query, limit=1000)
    want = expected(catalog.rows, query=query)
    assert got.ids == want
    assert set(got.totals) == {len(want)}


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("zoë", {"Zoë Ärger", "ZOË SHOUTS"}),
        ("ŁUKASZ", {"łukasz Nowak"}),
        ("ΕΛΈΝΗ", {"Ελένη Παπαδοπούλου"}),
        ("анна", {"Анна Смирнова"}),
        ("0% p", {"100% Pure"}),
        ("r_s", {"under_score"}),
        ("k\\s", {"back\\slash"}),
        ("per%c", {"Percent Mail"}),
        ("shouting.upper@example", {"Upper Mail"}),
    ],
)
def test_literal_and_non_ascii_queries_find_exactly_these(
    catalog: Catalog, query: str, found: set[str]
) -> None:
    # The demo profiles hold plenty of "Zoë"s too: only the curated ones are checked by name.
    curated = {c[0] for c in CURATED}
    got = walk(catalog.http, query=query, limit=1000)
    assert {n for n in names(got.items) if n in curated} == found
    assert got.ids == expected(catalog.rows, query=query)


def test_wildcards_are_not_wildcards(catalog: Catalog) -> None:
    for query, decoy in (("0% p", "100 Pure"), ("r_s", "underXscore"), ("k\\s", "backslash")):
        assert decoy not in names(walk(catalog.http, query=query, limit=1000).items)


@pytest.mark.parametrize(
    "type", ["PROFILE_TYPE_USER", "PROFILE_TYPE_API_KEY", "PROFILE_TYPE_SYSTEM"]
)
def test_type_filter(catalog: Catalog, type: str) -> None:
    want = expected(catalog.rows, type=type)
    got = walk(catalog.http, type=type, limit=1000)
    assert want and got.ids == want
    assert {item["spec"]["type"] for item in got.items} == {type}
    assert set(got.totals) == {len(want)}


def test_api_keys_show_up_as_api_key_profiles(catalog: Catalog) -> None:
    got = walk(catalog.http, type="PROFILE_TYPE_API_KEY", query="key", limit=1000)
    # The account's admin key and the two issued above.
    assert len(got.items) >= 3
    assert {"ci key", "Deploy Key"} <= set(names(got.items))


@pytest.mark.parametrize("type", [None, "PROFILE_TYPE_UNSPECIFIED"])
def test_unspecified_type_means_every_type(catalog: Catalog, type: str | None) -> None:
    got = walk(catalog.http, type=type, limit=1000)
    assert got.ids == expected(catalog.rows)
    assert {item["spec"]["type"] for item in got.items} == {
        "PROFILE_TYPE_USER",
        "PROFILE_TYPE_API_KEY",
        "PROFILE_TYPE_SYSTEM",
    }


def test_type_and_query_combine(catalog: Catalog) -> None:
    got = walk(catalog.http, type="PROFILE_TYPE_SYSTEM", query="SYNC", limit=1000)
    assert "Nightly Sync" in names(got.items)
    assert got.ids == expected(catalog.rows, type="PROFILE_TYPE_SYSTEM", query="SYNC")


def test_unknown_type_is_invalid(catalog: Catalog) -> None:
    assert_invalid(catalog.http.get(PATH, params={"type": "PROFILE_TYPE_ROBOT"}))


@pytest.mark.parametrize(
    ("labels", "found"),
    [
        ({"env": "prod"}, {"Zoë Ärger", "Ελένη Παπαδοπούλου", "bob", "Bob"}),
        ({"team": "core", "env": "prod"}, {"Zoë Ärger"}),
        ({"cadenya.com/team": "x"}, {"łukasz Nowak", "Ελένη Παπαδοπούλου"}),
        ({"cadenya.com/team": "x", "env": "prod"}, {"Ελένη Παπαδοπούλου"}),
        ({"team": "core"}, {"Zoë Ärger", "ZOË SHOUTS", "Nightly Sync"}),
        ({"team": "nobody"}, set()),
    ],
)
def test_labels_filter(catalog: Catalog, labels: dict[str, str], found: set[str]) -> None:
    curated = {c[0] for c in CURATED}
    want = expected(catalog.rows, labels=labels)
    got = walk(catalog.http, labels=label_filter(labels), limit=1000)
    assert got.ids == want
    assert set(got.totals) == {len(want)}
    assert {n for n in names(got.items) if n in curated} == found
    for item in got.items:
        assert labels.items() <= item["metadata"]["labels"].items()


def test_labels_filter_with_query_and_type(catalog: Catalog) -> None:
    params = {"query": "o", "type": "PROFILE_TYPE_SYSTEM", "labels": "team=core"}
    got = walk(catalog.http, limit=1000, **params)
    assert "Nightly Sync" in names(got.items)
    assert got.ids == expected(
        catalog.rows, query="o", type="PROFILE_TYPE_SYSTEM", labels={"team": "core"}
    )


@pytest.mark.parametrize("labels", ["team", "team=core,env", "Bad Key=x", "team=not valid!"])
def test_malformed_labels_filter_is_invalid(catalog: Catalog, labels: str) -> None:
    assert_invalid(catalog.http.get(PATH, params={"labels": labels}))


def test_order_is_by_name_case_insensitively_then_id(catalog: Catalog) -> None:
    got = walk(catalog.http, query="bob", limit=2)
    bobs = [(i["spec"]["name"], i["metadata"]["id"]) for i in got.items]
    # The three "bob"s tie on name and so come in id order, before "Bobby".
    ties = [pid for n, pid in bobs if n.lower() == "bob"]
    assert len(ties) == 3 and ties == sorted(ties)
    assert bobs[3][0] == "Bobby"
    everything = walk(catalog.http, limit=1000).items
    keys = [(i["spec"]["name"].lower(), i["metadata"]["id"]) for i in everything]
    assert keys == sorted(keys)
    assert everything[0]["spec"]["name"] == ""


@pytest.mark.parametrize(
    ("limit", "size"), [(None, 50), (0, 50), (1, 1), (1000, 1000), (2000, 1000)]
)
def test_limit_rules(catalog: Catalog, limit: int | None, size: int) -> None:
    params = {} if limit is None else {"limit": limit}
    body = catalog.http.get(PATH, params=params).json()
    assert len(body["items"]) == size
    assert [i["metadata"]["id"] for i in body["items"]] == expected(catalog.rows)[:size]
    assert body["pagination"]["nextCursor"]
    assert body["pagination"]["total"] == len(catalog.rows)


@pytest.mark.parametrize("limit", ["-1", "abc", "1.5"])
def test_bad_limit_is_invalid(catalog: Catalog, limit: str) -> None:
    body = assert_invalid(catalog.http.get(PATH, params={"limit": limit}))
    if limit == "-1":
        (detail,) = body["details"]
        assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
        assert [v["field"] for v in detail["fieldViolations"]] == ["limit"]


@pytest.mark.parametrize(
    ("query", "limit", "labels"),
    [
        ("", 97, None),
        ("zoë", 7, None),
        ("ŁUKASZ", 1, None),
        ("%", 1, None),
        ("son", 25, None),
        ("", 3, "cadenya.com/team=x"),
        ("", 50, "team=core"),
    ],
)
def test_official_client_walks_every_match_once(
    server: Server, catalog: Catalog, query: str, limit: int, labels: str | None
) -> None:
    client = server.client(catalog.tenant.api_key)
    page = client.workspace_admin.list_profiles(query=query, limit=limit, labels=labels)
    ids = [profile.metadata.id for profile in page]
    want = expected(catalog.rows, query=query, labels=dict([labels.split("=")]) if labels else None)
    assert len(ids) == len(set(ids))
    assert ids == want
    params = {"query": query, "limit": limit, "labels": labels}
    total = catalog.http.get(PATH, params={k: v for k, v in params.items() if v}).json()
    assert total["pagination"]["total"] == len(want)


def test_the_raw_json_has_the_seed_shape(catalog: Catalog) -> None:
    body = catalog.http.get(PATH, params={"query": "zoë ärger"}).json()
    assert set(body) == {"items", "pagination"}
    assert body["pagination"] == {"nextCursor": "", "total": 1}
    (item,) = body["items"]
    # `info` is ours beside the seed's two: whether SCIM deactivated the person.
    assert set(item) == {"metadata", "spec", "info"}
    assert item["info"] == {"deactivated": False}
    metadata, spec = item["metadata"], item["spec"]
    assert set(metadata) == METADATA_FIELDS
    assert re.fullmatch(r"profile_[0-9A-HJKMNP-TV-Z]{26}", metadata["id"])
    assert metadata["accountId"] == catalog.tenant.id
    assert metadata["name"] == "Zoë Ärger"
    assert isinstance(metadata["profileId"], str)
    assert metadata["externalId"] == ""
    assert metadata["labels"] == {"team": "core", "env": "prod"}
    assert RFC3339_MS.fullmatch(metadata["createdAt"])
    assert spec == {"type": "PROFILE_TYPE_USER", "email": "zoe@zoë-design.eu", "name": "Zoë Ärger"}


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
_stored_rows = st.builds(
    SimpleNamespace,
    id=_text,
    account_id=_text,
    type=st.sampled_from(sorted(WIRE_TYPES)),
    name=_text,
    email=_text,
    external_id=_text,
    labels=st.dictionaries(_text, _text, max_size=3),
    creator_profile_id=_text,
    # SQLite hands back naive datetimes, PostgreSQL aware ones.
    created_at=st.datetimes(timezones=st.sampled_from([None, UTC, timezone(timedelta(hours=-5))])),
    deactivated_at=st.none() | st.datetimes(timezones=st.just(UTC)),
)


# No deadline: a test checks behaviour, never a timing, and the machine may be loaded.
@settings(deadline=None)
@given(rows=st.lists(_stored_rows, max_size=4), next_cursor=_text, total=st.integers(0, 2**40))
def test_a_page_renders_as_its_models_would(rows, next_cursor: str, total: int) -> None:
    models = ProfileList(
        items=[Profile.of(r) for r in rows],
        pagination={"next_cursor": next_cursor, "total": total},
    )
    rendered = ProfileList.render(rows, next_cursor=next_cursor, total=total)
    assert rendered == models.model_dump_json(by_alias=True).encode()


def test_every_page_but_the_last_has_a_cursor(catalog: Catalog) -> None:
    got = walk(catalog.http, query="pure", limit=1)
    assert got.pages == len(expected(catalog.rows, query="pure")) == 2
    last = catalog.http.get(PATH, params={"query": "pure", "limit": 2}).json()
    assert len(last["items"]) == 2 and last["pagination"]["nextCursor"] == ""
    nothing = catalog.http.get(PATH, params={"query": "nobody-has-this-text"}).json()
    assert nothing == {"items": [], "pagination": {"nextCursor": "", "total": 0}}


def test_limit_may_change_between_pages(catalog: Catalog) -> None:
    want = expected(catalog.rows, query="a")
    first = catalog.http.get(PATH, params={"query": "a", "limit": 3}).json()
    second = catalog.http.get(
        PATH, params={"query": "a", "limit": 5, "cursor": first["pagination"]["nextCursor"]}
    ).json()
    seen = [i["metadata"]["id"] for i in first["items"] + second["items"]]
    assert seen == want[:8]
    assert second["pagination"]["total"] == len(want)


def _first_cursor(catalog: Catalog, **params: str | int) -> str:
    cursor = catalog.http.get(PATH, params={"limit": 2, **params}).json()["pagination"][
        "nextCursor"
    ]
    assert cursor
    return cursor


def _flip(text: str, index: int) -> str:
    return text[:index] + ("B" if text[index] == "A" else "A") + text[index + 1 :]


def test_tampered_cursors_are_invalid(catalog: Catalog) -> None:
    cursor = _first_cursor(catalog)
    payload, dot, mac = cursor.partition(".")
    assert dot
    tampered = [
        _flip(payload, len(payload) // 2) + "." + mac,
        payload + "." + _flip(mac, len(mac) // 2),
        cursor[: len(cursor) // 2],
        cursor[:-2],
        payload,
        payload + ".",
        "." + mac,
        "garbage",
        "zoë.zoë",
        "%%%.%%%",
        mac + "." + payload,
    ]
    for bad in tampered:
        body = assert_invalid(catalog.http.get(PATH, params={"limit": 2, "cursor": bad}))
        assert "Traceback" not in body["message"]


@pytest.mark.parametrize(
    ("made_with", "used_with"),
    [
        ({"query": "a"}, {"query": "b"}),
        ({"query": "a"}, {}),
        ({"type": "PROFILE_TYPE_USER"}, {"type": "PROFILE_TYPE_SYSTEM"}),
        ({"type": "PROFILE_TYPE_USER"}, {}),
        ({"labels": "team=core"}, {"labels": "team=core,env=prod"}),
        ({"labels": "team=core"}, {"labels": "team=support"}),
    ],
)
def test_a_cursor_of_another_query_is_invalid(
    catalog: Catalog, made_with: dict[str, str], used_with: dict[str, str]
) -> None:
    cursor = _first_cursor(catalog, **made_with)
    assert_invalid(catalog.http.get(PATH, params={"limit": 2, "cursor": cursor, **used_with}))


def test_a_cursor_of_another_account_is_invalid(server: Server, catalog: Catalog) -> None:
    cursor = _first_cursor(catalog)
    other = make_account(server)
    assert_invalid(server.http(other.api_key).get(PATH, params={"limit": 2, "cursor": cursor}))


def test_only_administrators_may_search(server: Server, account: Tenant) -> None:
    member = make_profile(server, account.id, name="Mo Member", email="mo@acme.io")
    denied = server.http(jwt_for(server, member, account.id)).get(PATH)
    assert denied.status_code == 403 and denied.json()["code"] == 7
    with server.runtime.db.transaction() as session:
        weak = api_keys.issue(
            session=session,
            keyring=server.runtime.keyring,
            account_id=account.id,
            name="reader",
            permissions=["workspaces:read", "api_keys:manage"],
            creator_profile_id=account.admin_profile_id,
        )
    denied = server.http(weak.token).get(PATH)
    assert denied.status_code == 403 and denied.json()["code"] == 7
    anonymous = server.http().get(PATH)
    assert anonymous.status_code == 401 and anonymous.json()["code"] == 16
    # The caller is checked in the handler's thread, but a missing token is refused
    # before the parameters, as on every other route.
    anonymous = server.http().get(PATH, params={"limit": -1, "type": "nope"})
    assert anonymous.status_code == 401 and anonymous.json()["code"] == 16
