"""Walking the profile search while profiles come and go.

A writer thread inserts and deletes profiles straight in the database, with
names that fall between the pages being walked. The reader waits for at least
one change between consecutive pages, so the interleaving does not depend on
timing. Whatever happens, no profile may come twice and none that existed
throughout may be missed.
"""

from __future__ import annotations

import random
import threading
from collections import deque

import pytest

from cadenya_server.models import Profile
from cadenya_server.profiles import repository
from conftest import Server, Tenant
from search_model import PATH, expected, rows_of

LETTERS = "abcdefghij"
STABLE_PER_LETTER = 25
MAX_CHANGES = 5000
KEEP_ALIVE = 20


class Churn(threading.Thread):
    """Adds a profile and deletes an older one per change, until stopped."""

    def __init__(self, server: Server, account_id: str) -> None:
        super().__init__(daemon=True)
        self.server = server
        self.account_id = account_id
        self.created: set[str] = set()
        self.changes = 0
        self.error: BaseException | None = None
        self._stop_event = threading.Event()
        self._changed = threading.Condition()

    def run(self) -> None:
        rng = random.Random(7)
        alive: deque[str] = deque()
        try:
            while not self._stop_event.is_set() and self.changes < MAX_CHANGES:
                with self.server.runtime.db.transaction() as session:
                    profile = repository.add(
                        session,
                        account_id=self.account_id,
                        type="user",
                        name=f"{rng.choice(LETTERS).upper()}{rng.randrange(1000):03d} churn",
                        email=f"churn-{self.changes}@churn.test",
                    )
                    if len(alive) >= KEEP_ALIVE:
                        session.delete(session.get(Profile, alive.popleft()))
                alive.append(profile.id)
                self.created.add(profile.id)
                with self._changed:
                    self.changes += 1
                    self._changed.notify_all()
        except BaseException as exc:
            self.error = exc
        finally:
            with self._changed:
                self._stop_event.set()
                self._changed.notify_all()

    def wait_beyond(self, changes: int) -> None:
        """Until some change after the `changes`-th has committed (or the writer stopped)."""
        with self._changed:
            # A safety net for a wedged writer, not a timing assertion.
            self._changed.wait_for(
                lambda: self.changes > changes or self._stop_event.is_set(), timeout=60
            )

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=60)


@pytest.mark.parametrize("query", ["", "0"])
def test_walk_while_profiles_are_added_and_removed(
    server: Server, account: Tenant, query: str
) -> None:
    with server.runtime.db.transaction() as session:
        for letter in LETTERS:
            for n in range(STABLE_PER_LETTER):
                repository.add(
                    session,
                    account_id=account.id,
                    type="user",
                    name=f"{letter}{n:02d}0 stable",
                    email=f"{letter}{n}@stable.test",
                )
    # The writer deletes only what it added, so these exist throughout the walk.
    throughout = set(expected(rows_of(server, account.id), query=query))
    assert len(throughout) >= len(LETTERS) * STABLE_PER_LETTER
    writer = Churn(server, account.id)
    writer.start()
    http = server.http(account.api_key)
    seen: list[tuple[str, str]] = []
    pages = 0
    try:
        cursor = ""
        while True:
            changes = writer.changes
            params = {"query": query, "limit": 7, **({"cursor": cursor} if cursor else {})}
            response = http.get(PATH, params=params)
            assert response.status_code == 200, response.text
            body = response.json()
            pages += 1
            seen += [(i["spec"]["name"], i["metadata"]["id"]) for i in body["items"]]
            cursor = body["pagination"]["nextCursor"]
            if not cursor:
                break
            writer.wait_beyond(changes)
    finally:
        writer.stop()
    assert writer.error is None
    assert writer.changes >= pages - 1, "the writer must have changed something between pages"

    ids = [pid for _, pid in seen]
    assert len(ids) == len(set(ids)), "a profile came twice"
    assert throughout <= set(ids), "a profile that existed throughout was missed"
    assert set(ids) <= throughout | writer.created
    keys = [(name.lower(), pid) for name, pid in seen]
    assert keys == sorted(keys)
