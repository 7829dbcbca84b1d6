"""Exact totals of long needles from positional gram bitmaps (issue #17).

An account that keeps bitmaps answers a needle of four or more characters from them:
the stored base, less the documents of the dirt the writes since left, plus those of
them that match now. Each test writes the way users do, then holds every search against
the brute-force model, and the base, once the dirt is folded in, against a rebuild
from scratch (search_model.assert_index_matches).
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, text

from cadenya_server.models import Profile
from cadenya_server.profiles import importer
from cadenya_server.profiles.search import bitmaps, grams, planner
from cadenya_server.profiles.text import search_text
from conftest import Server, make_account
from search_model import assert_index_matches, keeps_bitmaps

NAMES = ["Zoë Kowalski", "Łukasz Nowak", "ZOË ŁUK", "Ada Lovelace", "Grace Hopper"]
NAMES += ["Jürgen Weiß", "Ørsted Åberg", "ada lovelace", "Müller-Lüdenscheidt", "100% Done"]
DOMAINS = ["initech.com", "example.com", "hooli.xyz", "zoë-design.eu"]


def _records(count: int, *, seed: int, prefix: str = "p") -> list[tuple[int, dict]]:
    return [
        (
            n + 1,
            {
                "name": f"{NAMES[(n + seed) % len(NAMES)]} {n % 7}",
                "email": f"{prefix}.{n}@{DOMAINS[(n * 3 + seed) % len(DOMAINS)]}",
                "type": ["user", "user", "api_key", "system"][(n + seed) % 4],
                "labels": {"team": f"t{(n + seed) % 3}", **({"tier": "vip"} if n % 5 else {})},
            },
        )
        for n in range(count)
    ]


def _add(http, name: str, email: str, labels: dict[str, str]) -> str:
    response = http.post(
        "/v1/account/profiles",
        json={"metadata": {"labels": labels}, "spec": {"email": email, "name": name}},
    )
    assert response.status_code == 200, response.text
    return response.json()["metadata"]["id"]


def test_an_import_past_the_threshold_keeps_bitmaps_through_imports_and_api_writes(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = make_account(server, name="Bitmaps", domain="bitmaps.test")
    monkeypatch.setattr(importer, "BATCH", 25)
    monkeypatch.setattr(importer, "BITMAPS_FROM", 60)
    monkeypatch.setattr(importer, "PARALLEL_MIN", 10)
    db = server.runtime.db
    importer.import_records(db=db, account_id=tenant.id, records=_records(40, seed=0))
    assert not keeps_bitmaps(server, tenant.id)
    # Past the threshold in its second batch; the rerun with other names rewrites them.
    importer.import_records(db=db, account_id=tenant.id, records=_records(80, seed=1))
    assert keeps_bitmaps(server, tenant.id)
    assert_index_matches(server, tenant.id, monkeypatch)
    importer.import_records(db=db, account_id=tenant.id, records=_records(80, seed=2))
    assert_index_matches(server, tenant.id, monkeypatch)

    http = server.http(tenant.api_key)
    ids = [
        _add(http, name, f"api.{n}@initech.com", {"team": f"t{n % 2}", "tier": "vip"})
        for n, name in enumerate(NAMES)
    ]
    for n, profile_id in enumerate(ids[:4]):
        body = {"spec": {"name": f"Ümit Initech {n}"}, "metadata": {"labels": {"team": "t9"}}}
        assert http.patch(f"/v1/account/profiles/{profile_id}", json=body).status_code == 200
    for profile_id in ids[4:7]:
        assert http.delete(f"/v1/account/profiles/{profile_id}").status_code == 200
    assert_index_matches(server, tenant.id, monkeypatch)


def test_searches_see_their_own_transactions_writes_before_any_compaction(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Writes and searches in one transaction: no compactor can fold this dirt, so every
    # total comes from the base less the dirty documents plus those that match now.
    # (Labels change through the API only, which keeps their rows: the first test.)
    tenant = make_account(server, name="Dirt", domain="dirt.test")
    db = server.runtime.db
    importer.import_records(db=db, account_id=tenant.id, records=_records(60, seed=0))
    assert importer.keep_bitmaps(db=db, account_id=tenant.id)
    assert not importer.keep_bitmaps(db=db, account_id=tenant.id)
    monkeypatch.setattr(planner, "SMALL_SCOPE", 0)
    with db.transaction() as session:
        profiles = session.scalars(
            select(Profile).where(Profile.account_id == tenant.id).order_by(Profile.id)
        ).all()
        for n, profile in enumerate(profiles[:12]):
            profile.name = f"Renamed Initech {n}"
            profile.search_text = search_text(profile.name, profile.email)
            profile.name_key = profile.name.lower()
            profile.type = "system" if n % 2 else "user"
        for profile in profiles[12:20]:
            session.delete(profile)
        session.flush()
        for n in range(6):
            name, email = f"Fresh Müller {n}", f"fresh.{n}@hooli.xyz"
            session.add(
                Profile(
                    account_id=tenant.id,
                    id=f"profile_fresh{n:020d}",
                    type="user",
                    name=name,
                    email=email,
                    email_key=email,
                    name_key=name.lower(),
                    search_text=search_text(name, email),
                )
            )
        session.flush()
        rows = session.execute(
            select(Profile.search_text, Profile.type, Profile.labels).where(
                Profile.account_id == tenant.id
            )
        ).all()
        pending = session.execute(text("SELECT count(*) FROM profile_search_dirt")).scalar()
        assert pending >= 26
        needles = ["initech", "renamed initech", "müller", "hooli.xyz", "fresh.3@hooli", "ada l"]
        needles += ["lovelace", ".com", "zoë-design.eu", "nobody-at-all"]
        for needle in needles:
            for type_, labels in ((None, {}), ("user", {}), (None, {"team": "t1"})):
                want = sum(
                    1
                    for text, kind, tags in rows
                    if needle in text
                    and (type_ is None or kind == type_)
                    and all(tags.get(k) == v for k, v in labels.items())
                )
                search = planner.SearchFilter(tenant.id, needle, type_, labels)
                plan = planner.Plan(session, search)
                assert plan._stats.bitmaps or plan._stats.matches == 0
                assert plan.count() == want, (needle, type_, labels)
    assert_index_matches(server, tenant.id, monkeypatch)


def test_an_account_past_the_last_document_number_counts_as_before(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = make_account(server, name="Numbers", domain="numbers.test")
    db = server.runtime.db
    importer.import_records(db=db, account_id=tenant.id, records=_records(30, seed=0))
    assert importer.keep_bitmaps(db=db, account_id=tenant.id)
    monkeypatch.setattr(bitmaps, "MAX_DOC", 20)
    importer.import_records(db=db, account_id=tenant.id, records=_records(40, seed=3))
    assert not keeps_bitmaps(server, tenant.id)
    assert_index_matches(server, tenant.id, monkeypatch)


@given(
    st.text(alphabet="abcdefgh", min_size=grams.MAX_GRAM, max_size=40),
    st.dictionaries(st.text(alphabet="abcdefgh", min_size=4, max_size=4), st.integers(0, 99)),
)
def test_a_cover_leaves_no_character_of_the_needle_out(needle: str, weights: dict) -> None:
    offsets = bitmaps.cover(needle, weights)
    assert offsets[0] == 0
    assert offsets[-1] == len(needle) - grams.MAX_GRAM
    assert all(0 < b - a <= grams.MAX_GRAM for a, b in itertools.pairwise(offsets))
