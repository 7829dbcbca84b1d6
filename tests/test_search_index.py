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
from collections.abc import Iterator

import pytest

from cadenya_server.profiles import importer
from cadenya_server.profiles.search import grams, index
from conftest import Server, Tenant, free_port, make_account, start_server, stop_server
from search_model import assert_index_matches, expected, rows_of, walk

NAMES = ["Zoë Kowalski", "Łukasz Nowak", "ZOË ŁUK", "Ada Lovelace", "Grace Hopper", "İlker Şahin"]
NAMES += ["Σίσυφος", "100% Done", "a_b", "Jürgen Weiß", "Ørsted Åberg", "ada lovelace"]


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
