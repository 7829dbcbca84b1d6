"""The search index stays exact through updates, deletes, an interrupted import and a restart.

The profile search answers from gram counts and a trigram index (FTS5 on SQLite,
pg_trgm on PostgreSQL), kept by triggers and, for imports, by the importer. Each
test changes profiles the way users do (the API, the official client, the
importer), then holds the index against the profiles themselves: the counts
must equal a recount, and every plan the search can choose (walking the name
order, sorting the index's candidates, and a walk that hands over to them) must
return exactly what the brute-force model returns. The accounts here are small,
so the plans are forced in this process; the server would scan instead.
"""

from __future__ import annotations

import itertools
import os
import signal
from collections import Counter
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from cadenya_server.models import (
    Profile,
    ProfileLabel,
    ProfileSearchAccount,
    ProfileSearchGram,
    ProfileSearchLabelGram,
)
from cadenya_server.profiles import importer
from cadenya_server.profiles.schemas import STORED_TYPES, ProfileType
from cadenya_server.profiles.search import grams, index, planner
from conftest import Server, Tenant, free_port, make_account, start_server, stop_server
from search_model import Row, expected, rows_of, walk

NEVER = 10**9
PLANS = {
    "walk": {"CANDIDATE_COST": {"sqlite": NEVER, "postgresql": NEVER}},
    # The count fetches the candidates (there are few) and the page sorts them.
    "candidates": {"CANDIDATE_COST": {"sqlite": 0, "postgresql": 0}},
    # The page asks the index again, for those after where the walk stopped.
    "walk then candidates": {
        "CANDIDATE_COST": {"sqlite": NEVER, "postgresql": NEVER},
        "WALK_FACTOR": 0,
        "MIN_WALK_BUDGET": 2,
        "HANDOVER": 0,
        "REMEMBERED_MATCHES": 0,
    },
}
NAMES = ["Zoë Kowalski", "Łukasz Nowak", "ZOË ŁUK", "Ada Lovelace", "Grace Hopper", "İlker Şahin"]
NAMES += ["Σίσυφος", "100% Done", "a_b", "Jürgen Weiß", "Ørsted Åberg", "ada lovelace"]


def _plan(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setattr(planner, "SMALL_SCOPE", 0)
    for constant, value in PLANS[name].items():
        monkeypatch.setattr(planner, constant, value)


def _pages(server: Server, search: planner.SearchFilter, limit: int = 4) -> tuple[list, int]:
    """Every page of a search through the planner, as the service walks them."""
    with server.runtime.db.transaction(write=False) as session:
        plan = planner.Plan(session, search)
        total = plan.count()
        found: list[str] = []
        after = None
        while True:
            rows = plan.page(after=after, limit=limit + 1, total=total)
            found += [row.id for row in rows[:limit]]
            if len(rows) <= limit:
                return found, total
            after = (rows[limit - 1].name_key, rows[limit - 1].id)


def _needles(rows: list[Row]) -> list[str]:
    """Short and long pieces of what is stored, in upper case too, and strings nobody has."""
    texts = sorted({t for r in rows for t in (r.name, r.email) if t})
    cuts = ((0, 1), (1, 2), (2, 3), (0, 7))
    pieces = {text[start : start + size] for text in texts[::5] for start, size in cuts}
    pieces |= {piece.upper() for piece in sorted(pieces)[::4]}
    return [*sorted(pieces - {""}), "xyzq", "łuk", "%", "_", "\\", "ß", "@", "zoë k"]


def assert_index_matches(server: Server, account_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The account's gram counts equal a recount; every plan agrees with the model."""
    with server.runtime.db.transaction(write=False) as session:
        profiles = session.execute(
            select(Profile.type, Profile.name_key, Profile.search_text, Profile.labels).where(
                Profile.account_id == account_id
            )
        ).all()
        # Label rows carry their profile's text, for walks in a label's name order.
        label_rows = session.execute(
            select(
                ProfileLabel.key,
                ProfileLabel.value,
                ProfileLabel.name_key,
                ProfileLabel.search_text,
            ).where(ProfileLabel.account_id == account_id)
        ).all()
        stored = {
            (type_, gram): (n, lo, hi)
            for gram, type_, n, lo, hi in session.execute(
                select(
                    ProfileSearchGram.gram,
                    ProfileSearchGram.type,
                    ProfileSearchGram.n,
                    ProfileSearchGram.lo,
                    ProfileSearchGram.hi,
                )
                .join(ProfileSearchAccount, ProfileSearchAccount.no == ProfileSearchGram.account_no)
                .where(ProfileSearchAccount.account_id == account_id)
            )
        }
        label_grams = session.scalar(
            select(ProfileSearchAccount.label_grams).where(
                ProfileSearchAccount.account_id == account_id
            )
        )
        stored_labels = {
            (label, gram): n
            for label, gram, n in session.execute(
                select(
                    ProfileSearchLabelGram.label,
                    ProfileSearchLabelGram.gram,
                    ProfileSearchLabelGram.n,
                )
                .join(
                    ProfileSearchAccount,
                    ProfileSearchAccount.no == ProfileSearchLabelGram.account_no,
                )
                .where(ProfileSearchAccount.account_id == account_id)
            )
        }
    assert sorted(label_rows) == sorted(
        (key, value, name_key, text)
        for _, name_key, text, labels in profiles
        for key, value in labels.items()
    )
    recount = Counter((type_, g) for type_, _, text, _ in profiles for g in grams.of_text(text))
    assert {key: n for key, (n, _, _) in stored.items()} == dict(recount)
    recount_labels = Counter(
        (f"{key}={value}", g)
        for _, _, text, labels in profiles
        for key, value in labels.items()
        for g in grams.of_text(text)
    )
    assert stored_labels == (dict(recount_labels) if label_grams else {})
    for type_, name_key, text, _ in profiles:
        for gram in grams.of_text(text):
            _, lo, hi = stored[type_, gram]
            assert lo <= name_key <= hi, (gram, name_key)

    rows = rows_of(server, account_id)
    labels = sorted({item for r in rows for item in r.labels.items()})[:2]
    searches = [(needle, None, {}) for needle in _needles(rows)]
    searches += [("", ProfileType.API_KEY, {}), ("key", ProfileType.API_KEY, {})]
    searches += [(n, None, dict([label])) for n in ("", "a", "ada", "zoë k") for label in labels]
    # Two labels of different keys: a walk of the one's rows tests the other.
    first_values: dict[str, str] = {}
    for key, value in sorted({item for r in rows for item in r.labels.items()}):
        first_values.setdefault(key, value)
    two_labels = dict(list(first_values.items())[:2])
    searches += [("o", ProfileType.USER, dict(labels)), ("o", None, two_labels)]
    searches += [("", None, two_labels), ("team", None, {"nobody": "x"})]
    for plan in PLANS:
        with monkeypatch.context() as patch:
            _plan(patch, plan)
            for query, type_, wanted_labels in searches:
                search = planner.SearchFilter(
                    account_id=account_id,
                    needle=query.lower(),
                    type=STORED_TYPES[type_] if type_ else None,
                    labels=wanted_labels,
                )
                want = expected(rows, query=query, type=type_, labels=wanted_labels)
                assert _pages(server, search) == (want, len(want)), (plan, search)


def _add(http, name: str, email: str, labels: dict[str, str]) -> str:
    response = http.post(
        "/v1/account/profiles",
        json={"metadata": {"labels": labels}, "spec": {"email": email, "name": name}},
    )
    assert response.status_code == 200, response.text
    return response.json()["metadata"]["id"]


def test_updates_and_deletes_through_the_api_keep_the_index_exact(
    server: Server, account: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    http = server.http(account.api_key)
    client = server.client(account.api_key)
    ids = [
        _add(
            http,
            name,
            f"{name.split()[0].lower()}.{n}@zoë-design.eu",
            {"team": f"t{n % 3}", **({"region": "eu"} if n % 2 else {})},
        )
        for n, name in enumerate(NAMES * 2)
    ]
    keys = [
        client.api_keys.create(metadata={"name": f"deploy key {n}"}, spec={"permissions": []})
        for n in range(3)
    ]
    assert_index_matches(server, account.id, monkeypatch)

    for n, profile_id in enumerate(ids[:8]):
        response = http.patch(
            f"/v1/account/profiles/{profile_id}",
            json={"spec": {"name": f"Renamed Ümit {n}"}, "metadata": {"labels": {"team": "x"}}},
        )
        assert response.status_code == 200, response.text
    for profile_id in ids[14:17]:
        # A new name alone: the label rows follow it (the trigger of migration 0006).
        response = http.patch(
            f"/v1/account/profiles/{profile_id}", json={"spec": {"name": "Ålvar"}}
        )
        assert response.status_code == 200, response.text
    client.api_keys.update(keys[0].metadata.id, metadata={"name": "Łukasz's key"})
    for profile_id in ids[8:14]:
        assert http.delete(f"/v1/account/profiles/{profile_id}").status_code == 200
    client.api_keys.delete(keys[1].metadata.id)
    assert_index_matches(server, account.id, monkeypatch)


def _records(count: int, *, seed: int) -> Iterator[tuple[int, dict]]:
    for n in range(count):
        yield (
            n + 1,
            {
                "name": f"{NAMES[(n + seed) % len(NAMES)]} {n}",
                "email": f"person{n}@example.org",
                "type": ["user", "api_key", "system"][(n + seed) % 3],
                "labels": {"team": f"t{(n + seed) % 4}"},
            },
        )


def test_an_import_interrupted_by_a_failing_batch_leaves_the_index_exact(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = make_account(server, name="Importer", domain="import.test")
    monkeypatch.setattr(importer, "BATCH", 15)
    counted = grams.changes
    calls = itertools.count(1)

    def fails_in_the_third_batch(**rows: object) -> object:
        # Inside the batch's transaction, after its profiles were written.
        if next(calls) == 3:
            raise RuntimeError("disk full")
        return counted(**rows)

    with monkeypatch.context() as patch:
        patch.setattr(grams, "changes", fails_in_the_third_batch)
        with pytest.raises(RuntimeError, match="disk full"):
            importer.import_records(
                db=server.runtime.db, account_id=tenant.id, records=_records(60, seed=0)
            )
    assert len(rows_of(server, tenant.id)) == 2 * 15 + 2  # two batches, the admin and its key
    assert_index_matches(server, tenant.id, monkeypatch)

    # Running it again finishes the job; a third run rewrites every row (new names,
    # types and labels for the same emails), which takes the old ones out first.
    for seed in (0, 1):
        importer.import_records(
            db=server.runtime.db, account_id=tenant.id, records=_records(60, seed=seed)
        )
        assert len(rows_of(server, tenant.id)) == 60 + 2
        assert_index_matches(server, tenant.id, monkeypatch)


def test_grams_counted_in_a_worker_process_keep_the_index_exact(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Large batches are counted in another process, a profile under the type of its
    # record or else as a new profile's ("user"); one that keeps another type has its
    # batch counted again in the transaction.
    tenant = make_account(server, name="Worker", domain="worker.test")
    monkeypatch.setattr(importer, "BATCH", 20)
    monkeypatch.setattr(importer, "PARALLEL_MIN", 10)
    untyped = (
        (n, {k: v for k, v in record.items() if k != "type"}) for n, record in _records(50, seed=2)
    )
    for records in (_records(50, seed=0), _records(50, seed=1), untyped):
        importer.import_records(db=server.runtime.db, account_id=tenant.id, records=records)
        assert len(rows_of(server, tenant.id)) == 50 + 2
        assert_index_matches(server, tenant.id, monkeypatch)


def _label_grams_marked(server: Server, account_id: str) -> bool:
    with server.runtime.db.transaction(write=False) as session:
        return index.label_grams_marked(session, account_id)


def test_label_gram_counts_of_a_large_account_stay_exact(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An import that takes the account past LABEL_GRAMS_FROM counts the profiles
    # already there, then each batch; from then on the triggers keep the counts
    # through the API's writes, and the totals of one-label searches come from them.
    tenant = make_account(server, name="Large", domain="large.test")
    monkeypatch.setattr(importer, "BATCH", 15)
    monkeypatch.setattr(importer, "LABEL_GRAMS_FROM", 40)
    importer.import_records(
        db=server.runtime.db, account_id=tenant.id, records=_records(30, seed=0)
    )
    assert_index_matches(server, tenant.id, monkeypatch)
    assert not _label_grams_marked(server, tenant.id)  # 32 profiles

    monkeypatch.setattr(importer, "PARALLEL_MIN", 10)
    for seed in (0, 1):
        importer.import_records(
            db=server.runtime.db, account_id=tenant.id, records=_records(60, seed=seed)
        )
        assert_index_matches(server, tenant.id, monkeypatch)
    assert _label_grams_marked(server, tenant.id)

    http = server.http(tenant.api_key)
    ids = [
        _add(http, name, f"n{n}@large.test", {"team": f"t{n % 2}", "tier": "vip"})
        for n, name in enumerate(NAMES)
    ]
    for n, profile_id in enumerate(ids[:4]):
        body = {"spec": {"name": f"Ümit {n}"}, "metadata": {"labels": {"team": "t9"}}}
        assert http.patch(f"/v1/account/profiles/{profile_id}", json=body).status_code == 200
    for profile_id in ids[4:7]:
        assert http.delete(f"/v1/account/profiles/{profile_id}").status_code == 200
    assert_index_matches(server, tenant.id, monkeypatch)


def test_a_killed_and_restarted_server_serves_the_same_index(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = make_account(server, name="Restart", domain="restart.test")
    port = free_port()
    process = start_server(server.env, port)
    try:
        http = server.http(tenant.api_key)
        http.base_url = f"http://127.0.0.1:{port}"
        for n, name in enumerate(NAMES):
            _add(http, name, f"r{n}@restart.test", {"team": "a"})
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        process = start_server(server.env, port)
        rows = rows_of(server, tenant.id)
        for query in ("zoë", "ŁUK", "a", "restart.test", "xyzq"):
            got = walk(http, query=query, limit=2)
            assert got.ids == expected(rows, query=query)
            assert set(got.totals) == {len(got.ids)}
        _add(http, "Zoë After Restart", "after@restart.test", {})
    finally:
        stop_server(process)
    assert_index_matches(server, tenant.id, monkeypatch)
