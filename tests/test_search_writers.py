"""Writers of one account at once: several API clients and an import (issue #17).

Gram counts are striped (migration 0009) so that writers of one account do not
queue behind one another; whatever order they commit in, every total afterwards
equals the brute-force count, pages walked during the writes return no profile
twice and miss none that existed throughout, and an import killed halfway and run
again leaves the index exact. Both accounts keep bitmaps (profiles.search.bitmaps), so
long needles are counted from them while their dirt is being folded in.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cadenya_server.models import Profile
from cadenya_server.profiles import importer, repository
from cadenya_server.profiles.search import index
from conftest import Server, Tenant, make_account
from helpers import server_with
from search_model import assert_index_matches, expected, rows_of

WRITERS = 4
PER_WRITER = 12
SEEDED = 40
IMPORTED = 300
# Small batches, so that the import commits many times while the writers run.
BATCH = 20
NEEDLES = ["", "a", "writer", "initech.com", "MÜLLER-L", ".1@"]


def _records(count: int, *, seed: int, prefix: str = "imported") -> list[dict[str, object]]:
    names = ["Müller-Lüdenscheidt", "Ada Lovelace", "Zoë Kowalski", "Grace Hopper"]
    return [
        {
            "name": f"{names[(n + seed) % len(names)]} {n}",
            "email": f"{prefix}.{n}@initech.com",
            "type": "user",
            "labels": {"team": f"t{(n + seed) % 3}"},
        }
        for n in range(count)
    ]


class _Writer(threading.Thread):
    """Creates profiles through the API, one request at a time."""

    def __init__(self, server: Server, api_key: str, number: int) -> None:
        super().__init__(daemon=True)
        self.http = server.http(api_key)
        self.number = number
        self.failures: list[str] = []
        self.done = 0

    def run(self) -> None:
        for n in range(PER_WRITER):
            response = self.http.post(
                "/v1/account/profiles",
                json={
                    "metadata": {"labels": {"team": f"t{n % 3}"}},
                    "spec": {
                        "name": f"Writer {self.number} Müller-Lüdenscheidt {n}",
                        "email": f"writer{self.number}.{n}.1@initech.com",
                    },
                },
            )
            if response.status_code != 200:
                self.failures.append(response.text)
            self.done += 1


def _walk_all(http: object, query: str) -> list[tuple[str, str]]:
    """Every page of a search, one small page at a time."""
    seen: list[tuple[str, str]] = []
    cursor = ""
    while True:
        params = {"query": query, "limit": 5, **({"cursor": cursor} if cursor else {})}
        response = http.get("/v1/account/profiles", params=params)  # type: ignore[attr-defined]
        assert response.status_code == 200, response.text
        body = response.json()
        seen += [(i["spec"]["name"], i["metadata"]["id"]) for i in body["items"]]
        cursor = body["pagination"]["nextCursor"]
        if not cursor:
            return seen


def test_writers_and_an_import_at_once_keep_totals_and_pages_exact(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = make_account(server, name="Busy", domain="busy.test")
    importer.import_records(
        db=server.runtime.db,
        account_id=tenant.id,
        records=enumerate(_records(SEEDED, seed=0, prefix="seeded"), 1),
    )
    # Long needles counted from bitmaps, which the servers' compactors fold meanwhile.
    assert importer.keep_bitmaps(db=server.runtime.db, account_id=tenant.id)
    http = server.http(tenant.api_key)
    throughout = {
        query: set(expected(rows_of(server, tenant.id), query=query)) for query in ("", "müller")
    }

    monkeypatch.setattr(importer, "BATCH", BATCH)
    imported: list[BaseException] = []

    def run_import() -> None:
        try:
            importer.import_records(
                db=server.runtime.db,
                account_id=tenant.id,
                records=enumerate(_records(IMPORTED, seed=1), 1),
            )
        except BaseException as exc:
            imported.append(exc)

    writers = [_Writer(server, tenant.api_key, n) for n in range(WRITERS)]
    importing = threading.Thread(target=run_import, daemon=True)
    importing.start()
    for writer in writers:
        writer.start()
    walks = {query: [] for query in throughout}
    # Pages walked while the writers and the import run.
    while any(writer.is_alive() for writer in writers) or importing.is_alive():
        for query in throughout:
            walks[query].append(_walk_all(http, query))
    for writer in writers:
        writer.join()
    importing.join()
    assert not imported
    assert [w.failures for w in writers] == [[]] * WRITERS
    assert all(walks.values()), "no walk ran during the writes"

    for query, walked in walks.items():
        for seen in walked:
            ids = [profile_id for _, profile_id in seen]
            assert len(ids) == len(set(ids)), "a profile came twice"
            assert throughout[query] <= set(ids), "a profile that existed throughout was missed"
            keys = [(name.lower(), profile_id) for name, profile_id in seen]
            assert keys == sorted(keys)

    rows = rows_of(server, tenant.id)
    assert len(rows) == 2 + SEEDED + IMPORTED + WRITERS * PER_WRITER  # the admin and its key
    for query in NEEDLES:
        body = http.get("/v1/account/profiles", params={"query": query, "limit": 1}).json()
        assert body["pagination"]["total"] == len(expected(rows, query=query)), query
    assert_index_matches(server, tenant.id, monkeypatch)


IMPORT_SCRIPT = """
import sys
from pathlib import Path

from cadenya_server.config import Settings
from cadenya_server.kit.runtime import Runtime
from cadenya_server.profiles import importer

importer.BATCH = int(sys.argv[3])
runtime = Runtime.from_settings(Settings())
importer.import_records(
    db=runtime.db, account_id=sys.argv[1], records=importer.read_file(Path(sys.argv[2]))
)
"""


def _profiles(server: Server, account_id: str) -> int:
    with server.runtime.db.transaction(write=False) as session:
        return session.scalar(
            select(func.count()).select_from(Profile).where(Profile.account_id == account_id)
        )


def test_an_import_killed_halfway_and_run_again_leaves_the_index_exact(
    server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tenant = make_account(server, name="Killed", domain="killed.test")
    assert importer.keep_bitmaps(db=server.runtime.db, account_id=tenant.id)
    path = tmp_path / "profiles.jsonl"
    records = _records(IMPORTED, seed=2)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    process = subprocess.Popen(
        [sys.executable, "-c", IMPORT_SCRIPT, tenant.id, str(path), str(BATCH)],
        env=server.env,
    )
    try:
        # Killed once some batches have committed and before the last has.
        while _profiles(server, tenant.id) < 2 + 3 * BATCH and process.poll() is None:
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the import ended before it was killed"
    left = _profiles(server, tenant.id)
    assert 2 < left < 2 + IMPORTED
    assert_index_matches(server, tenant.id, monkeypatch)

    monkeypatch.setattr(importer, "BATCH", BATCH)
    importer.import_records(
        db=server.runtime.db, account_id=tenant.id, records=importer.read_file(path)
    )
    assert _profiles(server, tenant.id) == 2 + IMPORTED
    assert_index_matches(server, tenant.id, monkeypatch)


def test_writers_at_once_fill_the_profile_quota_exactly(server: Server) -> None:
    # Far from the limit a writer counts without waiting for the others; near it, it
    # waits for them: however they interleave, the account ends at the limit exactly.
    limit = 2 + 2 * index.STRIPES + 6
    tenant = make_account(server, name="Quota", domain="quota.test")
    answers: list[tuple[int, int | None]] = []

    def create(http: object, number: int) -> None:
        for n in range(5):
            response = http.post(  # type: ignore[attr-defined]
                "/v1/account/profiles",
                json={"spec": {"name": f"Q {number} {n}", "email": f"q{number}.{n}@q.test"}},
            )
            code = None if response.status_code == 200 else response.json()["code"]
            answers.append((response.status_code, code))

    with server_with(server, max_profiles_per_account=str(limit)) as base_url:
        clients = [server.http(tenant.api_key) for _ in range(8)]
        for http in clients:
            http.base_url = base_url
        threads = [threading.Thread(target=create, args=(c, n)) for n, c in enumerate(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    # Refused for the quota (400, FAILED_PRECONDITION), or asked to retry at its edge.
    assert set(answers) <= {(200, None), (400, 9), (503, 14)}
    assert answers.count((200, None)) == limit - 2
    assert _profiles(server, tenant.id) == limit


@pytest.mark.parametrize("holder", ["a profile written", "an import batch's stripe"])
def test_a_write_goes_ahead_while_another_in_the_account_is_uncommitted(
    server: Server, account: Tenant, holder: str
) -> None:
    if server.runtime.db.dialect != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    http = server.http(account.api_key)
    with server.runtime.db.transaction() as session:
        if holder == "a profile written":
            repository.add(
                session, account_id=account.id, type="user", name="Held", email="held@w.test"
            )
            session.flush()
        else:
            # What an import's batch holds from its counts until it commits.
            index.hold_stripe(session, account.id)
        # One lock per account made this wait for the open transaction (and time out).
        response = http.post(
            "/v1/account/profiles",
            json={"spec": {"name": "Meanwhile", "email": "meanwhile@w.test"}},
        )
        assert response.status_code == 200, response.text
    assert _profiles(server, account.id) == 2 + 1 + (holder == "a profile written")
