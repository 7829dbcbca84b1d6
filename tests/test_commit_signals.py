"""What a commit sets off, and only a commit: `kit.db.on_commit` hooks, the outbox's
hand-off of new deliveries to the writing process's worker (`outbox.hand_to`), and the
wake-up of workers; a rollback, of the transaction or of the savepoint that wrote them,
sets off none of it. And SQLite's one writer per process (`kit.db`). On a real database
of the suite's kind; the worker is a recording stand-in for `webhooks.worker.Worker`, so
what each transaction handed can be read exactly."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from cadenya_server import outbox
from cadenya_server.kit.clock import now
from cadenya_server.kit.db import Database, _writer_lock, on_commit, responding
from cadenya_server.kit.ids import new_id
from cadenya_server.models import WebhookDelivery, WebhookEndpoint
from conftest import cli, new_database


class Boom(Exception):
    pass


@dataclass
class Taker:
    """Records what it is offered, given and given back; `room` deliveries at most."""

    room: int = 100
    reserved: list[outbox.Reservation] = field(default_factory=list)
    taken: list[tuple[outbox.Reservation, list[outbox.Handed]]] = field(default_factory=list)
    unreserved: list[outbox.Reservation] = field(default_factory=list)

    def reserve(self, count: int) -> outbox.Reservation | None:
        granted = min(count, self.room)
        if granted <= 0:
            return None
        made = outbox.Reservation(new_id("lease"), now() + timedelta(seconds=60), granted)
        self.reserved.append(made)
        return made

    def take(self, reservation: outbox.Reservation, handed: list[outbox.Handed]) -> None:
        self.taken.append((reservation, handed))

    def unreserve(self, reservation: outbox.Reservation) -> None:
        self.unreserved.append(reservation)

    def handed_ids(self) -> list[str]:
        return [h.delivery_id for _, handed in self.taken for h in handed]


@dataclass
class Plane:
    db: Database
    account_id: str
    endpoint_id: str
    ordered_id: str
    taker: Taker
    wakes: list[int]

    def publish(self, session: object, n: int = 0) -> str:
        return outbox.publish(
            session,  # type: ignore[arg-type]
            account_id=self.account_id,
            event=outbox.Event("test.item", {"n": n}),
        )

    def deliveries(self) -> list[WebhookDelivery]:
        with self.db.transaction(write=False) as session:
            return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


@pytest.fixture
def plane(server_env: dict[str, str], tmp_path: Path) -> Iterator[Plane]:
    with new_database(tmp_path) as url:
        env = {**server_env, "CADENYA_SERVER_DATABASE_URL": url}
        cli(env, "migrate")
        account_id = json.loads(
            cli(
                env,
                *("accounts", "create", "--name", "Hand", "--domain", "hand.io"),
                *("--admin-email", "ada@hand.io", "--admin-name", "Ada", "--json"),
            ).stdout
        )["accountId"]
        db = Database(url)
        endpoint_id, ordered_id = new_id("whep"), new_id("whep")
        with db.transaction() as session:
            session.add_all(
                [
                    WebhookEndpoint(id=endpoint_id, account_id=account_id, url="http://a.test/"),
                    WebhookEndpoint(
                        id=ordered_id, account_id=account_id, url="http://b.test/", ordered=True
                    ),
                ]
            )
        taker = Taker()
        wakes: list[int] = []
        unhand = outbox.hand_to(db.engine, taker)
        unlisten = outbox.on_commit(lambda: wakes.append(1))
        try:
            yield Plane(db, account_id, endpoint_id, ordered_id, taker, wakes)
        finally:
            unlisten()
            unhand()
            db.dispose()


def test_hooks_run_after_a_commit_and_otherwise_after_a_rollback(plane: Plane) -> None:
    seen: list[str] = []
    with plane.db.transaction() as session:
        on_commit(session, lambda: seen.append("committed"), lambda: seen.append("rolled back"))
        assert seen == []
    assert seen == ["committed"]

    seen.clear()
    with pytest.raises(Boom), plane.db.transaction() as session:
        on_commit(session, lambda: seen.append("committed"), lambda: seen.append("rolled back"))
        raise Boom
    assert seen == ["rolled back"]

    # A savepoint rolled back ends the hooks registered within it, not the others.
    seen.clear()
    with plane.db.transaction() as session:
        on_commit(session, lambda: seen.append("outer"))
        with pytest.raises(Boom), session.begin_nested():
            on_commit(session, lambda: seen.append("inner"), lambda: seen.append("inner undone"))
            with session.begin_nested():
                on_commit(session, lambda: seen.append("innermost"))
            raise Boom
        assert seen == ["inner undone"]
    assert seen == ["inner undone", "outer"]


def test_a_commit_hands_its_deliveries_to_the_worker_leased_to_it(plane: Plane) -> None:
    with plane.db.transaction() as session:
        message_id = plane.publish(session)
        assert plane.taker.taken == []  # not before the commit
    (reservation, handed), *more = plane.taker.taken
    assert more == [] and plane.taker.unreserved == []
    rows = {row.endpoint_id: row for row in plane.deliveries()}
    # The unordered endpoint's delivery was handed, leased to the taker...
    assert [h.delivery_id for h in handed] == [rows[plane.endpoint_id].id]
    assert handed[0].message_id == message_id and handed[0].url == "http://a.test/"
    assert handed[0].data == {"n": 0} and handed[0].type == "test.item"
    assert rows[plane.endpoint_id].lease_token == reservation.token
    assert rows[plane.endpoint_id].leased_until is not None
    # ...the ordered endpoint's is left to a claim (first in line is a claim's to decide),
    # so the workers are woken for it.
    assert rows[plane.ordered_id].lease_token == ""
    assert rows[plane.ordered_id].leased_until is None
    assert plane.wakes == [1]


def test_in_a_request_the_hand_off_waits_for_the_response(plane: Plane) -> None:
    # kit.http's Observability wraps every request in `responding()`: the caller does not
    # wait for the worker to start on what its commit handed over.
    with responding():
        with plane.db.transaction() as session:
            plane.publish(session)
        assert plane.taker.taken == [] and plane.wakes == []
        assert len(plane.taker.reserved) == 1
    assert len(plane.taker.taken) == 1 and plane.wakes == [1]


def test_a_rollback_hands_nothing_and_gives_the_room_back(plane: Plane) -> None:
    with pytest.raises(Boom), plane.db.transaction() as session:
        plane.publish(session)
        raise Boom
    assert plane.taker.taken == []
    assert plane.taker.unreserved == plane.taker.reserved and len(plane.taker.reserved) == 1
    assert plane.deliveries() == []
    assert plane.wakes == []


def test_a_savepoint_rolled_back_hands_nothing_of_its_own(plane: Plane) -> None:
    # How a publish with an idempotency key writes: in a savepoint, which a concurrent
    # publish of the same key rolls back.
    with plane.db.transaction() as session:
        with pytest.raises(Boom), session.begin_nested():
            plane.publish(session, 1)
            raise Boom
        kept = plane.publish(session, 2)
    assert len(plane.taker.unreserved) == 1
    rows = plane.deliveries()
    assert {row.message_id for row in rows} == {kept}
    assert plane.taker.handed_ids() == [
        row.id for row in rows if row.endpoint_id == plane.endpoint_id
    ]


def test_without_room_the_deliveries_wait_for_a_claim(plane: Plane) -> None:
    plane.taker.room = 0
    with plane.db.transaction() as session:
        plane.publish(session)
    assert plane.taker.taken == [] and plane.taker.reserved == []
    assert all(row.lease_token == "" for row in plane.deliveries())
    assert plane.wakes == [1]


def test_a_batch_is_handed_as_far_as_there_is_room(plane: Plane) -> None:
    plane.taker.room = 3
    with plane.db.transaction() as session:
        outbox.emit(
            session,
            account_id=plane.account_id,
            events=[outbox.Event("test.item", {"n": n}) for n in range(5)],
        )
    rows = [row for row in plane.deliveries() if row.endpoint_id == plane.endpoint_id]
    leased = sorted(row.id for row in rows if row.lease_token)
    assert len(rows) == 5 and len(leased) == 3
    assert sorted(plane.taker.handed_ids()) == leased
    assert plane.wakes == [1]  # for the two left, and the ordered endpoint's


def test_sqlite_writers_of_a_process_take_turns_on_one_lock(plane: Plane) -> None:
    if plane.db.dialect != "sqlite":
        pytest.skip("PostgreSQL has many writers")
    lock = _writer_lock(plane.db.engine.url.database or "")
    with plane.db.transaction(write=False):
        assert not lock.locked()
    with plane.db.transaction():
        assert lock.locked()
        # A second Database on the same file (another part of the same process) queues
        # on the same lock, not in SQLite's busy handler.
        other = Database(str(plane.db.engine.url))
        try:
            assert other._writer is lock
        finally:
            other.dispose()
    assert not lock.locked()
    with pytest.raises(Boom), plane.db.transaction():
        raise Boom
    assert not lock.locked()

    # A request's transaction begins in one thread and may end in another.
    async def request() -> None:
        async with plane.db.request_transaction(write=True) as session:
            plane.publish(session)
            assert lock.locked()

    asyncio.run(request())
    assert not lock.locked()

    # Writers in many threads at once all get their turn.
    done: list[int] = []

    def write(n: int) -> None:
        with plane.db.transaction() as session:
            plane.publish(session, n)
        done.append(n)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(done) == list(range(8))
