"""The engine, one transaction per request, and the two dialects' differences."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import structlog
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from cadenya_server.kit.errors import Unavailable

log = structlog.get_logger(__name__)

T = TypeVar("T")

# Set for requests that will write: SQLite then takes the write lock up front
# (BEGIN IMMEDIATE), so two writers queue on busy_timeout instead of one of
# them failing when it upgrades a read lock.
_write_intent: contextvars.ContextVar[bool] = contextvars.ContextVar("write_intent", default=False)
# A PostgreSQL connection back from the pool after this long idle is pinged first.
PING_AFTER_IDLE_SECONDS = 1.0
# Request transactions one process runs at once (see Admission); the pool holds a
# connection for each, and a few spare for /healthz and the command line.
CONCURRENT_TRANSACTIONS = 16
SPARE_CONNECTIONS = 4
# Of those, how many may write at once on PostgreSQL: the rest are kept for reads,
# so that reads never queue behind a burst of writes. SQLite has one writer.
POSTGRES_WRITERS = 8
# How long a request waits for its turn, or for a connection, before it is answered 503.
WAIT_SECONDS = 20


def engine_url(url: str) -> URL:
    """Plain URLs in, our drivers out: `postgresql://` is served by psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine configured for production use on either database."""
    parsed = engine_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=CONCURRENT_TRANSACTIONS,
            max_overflow=SPARE_CONNECTIONS,
            pool_timeout=WAIT_SECONDS,
            # The connection used last has the warmest page cache.
            pool_use_lifo=True,
            **kwargs,
        )
        _configure_sqlite(engine)
        return engine
    engine = create_engine(
        parsed,
        pool_size=CONCURRENT_TRANSACTIONS,
        max_overflow=SPARE_CONNECTIONS,
        pool_timeout=WAIT_SECONDS,
        # The connection used last has its statements prepared and its caches warm.
        pool_use_lifo=True,
        # psycopg prepares a statement on its fifth run, and PostgreSQL may then plan it
        # once for any parameters: a walk of the profile search in name order is several
        # times slower on its generic plan. Prepared, but planned for each run's values.
        # JIT compiles any plan estimated above jit_above_cost, and compiles it again on
        # every run of a count the estimate thinks large (bench/README.md).
        connect_args={"options": "-c plan_cache_mode=force_custom_plan -c jit=off"},
        **kwargs,
    )
    _ping_after_idle(engine)
    return engine


def _ping_after_idle(engine: Engine) -> None:
    """Ping a pooled connection before use only if it has been idle a while.

    SQLAlchemy's pool_pre_ping pings at every checkout, a round trip added to every
    request (bench/README.md). A connection used a moment ago is alive, or the server
    went away within that moment; then the statement fails, SQLAlchemy invalidates the pool, and the
    next request reconnects.
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        dialect = engine.dialect
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as exc:
            if dialect.is_disconnect(exc, dbapi_connection, None):
                # The pool replaces this connection and every older one, then retries.
                raise InvalidatePoolError() from exc
            raise


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event below issue BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA cache_size=-65536")
        # Reads straight from the operating system's page cache, shared by every
        # connection, instead of copies in each (SQLite caps it, at 2 GiB by default).
        cursor.execute("PRAGMA mmap_size=17179869184")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if _write_intent.get() else "BEGIN")


_AFTERWARDS = "cadenya.afterwards"
_ON_COMMIT = "cadenya.on_commit"

# One writer at a time per SQLite file in this process. SQLite lets one connection
# write and makes the others retry in its busy handler, which sleeps between tries (up
# to 100 ms a sleep): a commit waited for that sleep, not for the writer before it. Here
# the writers of this process queue on a lock that hands over at once; only other
# processes' writers still meet the busy handler.
# A plain Lock: a request's transaction may begin and end in different threads.
_sqlite_writers: dict[str, threading.Lock] = {}
_sqlite_writers_lock = threading.Lock()


def _writer_lock(database: str) -> threading.Lock:
    with _sqlite_writers_lock:
        return _sqlite_writers.setdefault(database, threading.Lock())


@dataclass
class _CommitHook:
    work: Callable[[], None]
    otherwise: Callable[[], None] | None
    # The savepoint the hook was registered in (None: the transaction itself).
    within: SessionTransaction | None


def on_commit(
    session: Session, work: Callable[[], None], otherwise: Callable[[], None] | None = None
) -> None:
    """Run `work` once this session's transaction has committed, or `otherwise` (if given)
    once it has rolled back; registered in a savepoint, a rollback of that savepoint counts
    as one. Both run in the thread that ended the transaction, before the request goes
    on, and must not fail (they are logged and ignored if they do)."""
    hooks: list[_CommitHook] | None = session.info.get(_ON_COMMIT)
    if hooks is None:
        raise RuntimeError("on_commit needs a transaction of Database.transaction or run")
    hooks.append(_CommitHook(work, otherwise, session.get_nested_transaction()))


class _AfterResponse:
    """Work a request's commit set off that its caller need not wait for."""

    def __init__(self) -> None:
        self.works: list[Callable[[], None]] = []
        self.sent = False
        self.lock = threading.Lock()

    def add(self, work: Callable[[], None]) -> bool:
        """Keep `work` for later; False if the response was sent already."""
        with self.lock:
            if not self.sent:
                self.works.append(work)
            return not self.sent

    def close(self) -> list[Callable[[], None]]:
        with self.lock:
            self.sent = True
            return self.works


# The current request's (`responding`, in kit.http's Observability); None outside one.
_after_response: contextvars.ContextVar[_AfterResponse | None] = contextvars.ContextVar(
    "after_response", default=None
)


def after_response(work: Callable[[], None]) -> None:
    """Run `work` once the current request's response is sent; outside a request, or after
    its response (a task it left behind), now.

    For what a commit hands on (webhook deliveries to the process's worker): started
    before the response, it would share the interpreter with the request's last steps,
    and the caller would wait for it."""
    pending = _after_response.get()
    if pending is None or not pending.add(work):
        work()


@contextmanager
def responding() -> Iterator[None]:
    """A request's span: what `after_response` is given within it runs when it ends."""
    pending = _AfterResponse()
    token = _after_response.set(pending)
    try:
        yield
    finally:
        _after_response.reset(token)
        for work in pending.close():
            try:
                work()
            except Exception:
                log.exception("work after a response failed")


def _run_hooks(hooks: list[_CommitHook], committed: bool) -> None:
    for hook in hooks:
        work = hook.work if committed else hook.otherwise
        if work is None:
            continue
        try:
            work()
        except Exception:
            log.exception("a commit hook failed")


def _forget_rolled_back(session: Session, previous: SessionTransaction) -> None:
    """A savepoint rolled back: its hooks, and those of savepoints within it, are over."""
    hooks: list[_CommitHook] | None = session.info.get(_ON_COMMIT)
    if not hooks or not previous.nested:
        return
    kept, over = [], []
    for hook in hooks:
        within = hook.within
        while within is not None and within is not previous:
            within = within.parent
        (kept if within is None else over).append(hook)
    hooks[:] = kept
    _run_hooks(over, committed=False)


def after_transaction(session: Session, work: Callable[[], None]) -> None:
    """Run `work`, a small write, when this session's transaction is over.

    For bookkeeping that must not hold, or wait for, the request's locks (on
    SQLite a second writer would wait for the request's own write lock). A
    request's bookkeeping runs after its response, in a writer's turn (Admission);
    elsewhere it runs when the transaction closes. `work` handles its own errors.
    """
    session.info[_AFTERWARDS].append(work)


class Admission:
    """Request transactions take turns here, on the event loop, before they take a thread.

    A request waiting for SQLite's single writer, or for a pooled connection, used
    to wait in a worker thread holding a connection: a burst of writers took every
    thread and connection, reads starved, and the waits ended in pool timeouts.
    Here a request waits as a suspended coroutine. At most `connections`
    transactions run at once (the pool has a connection for each), and at most
    `writers` of them write: writers queue for a writer's place before they queue
    for a connection, so a read never waits behind a queue of writers. On SQLite
    (one writer) the writers of other processes are met by busy_timeout, with one
    waiting thread per process.
    """

    def __init__(self, *, connections: int, writers: int) -> None:
        self._connections = asyncio.Semaphore(connections)
        self._writers = asyncio.Semaphore(writers)
        # A thread for each transaction that may run, so one is free for any that has
        # its turn; and lighter to reach than the shared pool through anyio.
        self._threads = ThreadPoolExecutor(connections, thread_name_prefix="transaction")
        # Bookkeeping still to be written, held so it is not collected half-way.
        self._pending: set[asyncio.Task[None]] = set()

    @asynccontextmanager
    async def turn(self, *, write: bool) -> AsyncIterator[None]:
        """Wait for a transaction's turn; Unavailable after WAIT_SECONDS."""
        if write:
            await _acquire(self._writers)
        try:
            await _acquire(self._connections)
            try:
                yield
            finally:
                self._connections.release()
        finally:
            if write:
                self._writers.release()

    async def in_thread(self, work: Callable[[], T]) -> T:
        """`work`, in this task's context, in a transaction thread (for a task in its turn)."""
        future = asyncio.get_running_loop().run_in_executor(
            self._threads, contextvars.copy_context().run, work
        )
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            # The turn is held until the thread is done with its connection.
            await asyncio.wait([future])
            raise

    def close(self) -> None:
        self._threads.shutdown(wait=False)

    def write_later(self, works: list[Callable[[], None]]) -> None:
        """Run `works` in a writer's turn, without waiting for them."""
        if not works:
            return

        async def write() -> None:
            async with self.turn(write=True):
                for work in works:
                    await self.in_thread(work)

        task = asyncio.get_running_loop().create_task(write())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)


async def _acquire(places: asyncio.Semaphore) -> None:
    """A place, or Unavailable after WAIT_SECONDS (a timer only when there is a wait)."""
    if not places.locked():
        await places.acquire()
        return
    try:
        async with asyncio.timeout(WAIT_SECONDS):
            await places.acquire()
    except TimeoutError:
        raise busy() from None


def busy() -> Unavailable:
    """The answer to a request that waited too long for the database."""
    return Unavailable("the server is busy; try again shortly")


class Database:
    """An engine and the sessions made from it."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.engine = make_engine(url, **engine_kwargs)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        event.listen(self._sessions, "after_soft_rollback", _forget_rolled_back)
        parsed = self.engine.url
        self._writer = (
            _writer_lock(parsed.database or ":memory:") if self.dialect == "sqlite" else None
        )
        self.admission = Admission(
            connections=CONCURRENT_TRANSACTIONS,
            writers=1 if self.dialect == "sqlite" else POSTGRES_WRITERS,
        )

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(
        self, *, write: bool = True, statements_alone: bool = False
    ) -> Iterator[Session]:
        """A session whose work commits on success and rolls back on any error.

        `write=False` promises the work only reads (GET and HEAD requests): SQLite then
        takes no write lock. `statements_alone`, with it, promises that its statements need
        no shared snapshot and no server-side cursor (yield_per): PostgreSQL then runs
        them outside a transaction. SQLite keeps one, which costs nothing there.

        Work registered with `after_transaction` runs once the session is closed,
        whether it committed or not.
        """
        afterwards: list[Callable[[], None]] = []
        try:
            with self._transaction(write, statements_alone, afterwards) as session:
                yield session
        finally:
            for work in afterwards:
                work()

    @asynccontextmanager
    async def request_transaction(self, *, write: bool) -> AsyncIterator[Session]:
        """`transaction()` for a request: begun in its turn, its bookkeeping written later.

        Beginning and ending it take a trip to the thread pool each; `run` does a
        request's work in one.
        """
        afterwards: list[Callable[[], None]] = []
        try:
            async with self.admission.turn(write=write):
                opened = self._transaction(write, False, afterwards)
                session = await self.admission.in_thread(opened.__enter__)
                try:
                    yield session
                except BaseException as exc:
                    await self.admission.in_thread(
                        partial(opened.__exit__, type(exc), exc, exc.__traceback__)
                    )
                    raise
                await self.admission.in_thread(partial(opened.__exit__, None, None, None))
        finally:
            self.admission.write_later(afterwards)

    async def run(
        self, work: Callable[[Session], T], *, write: bool, statements_alone: bool = False
    ) -> T:
        """`work` in a transaction of its own, in its turn, in one trip to the thread pool."""
        afterwards: list[Callable[[], None]] = []

        def in_thread() -> T:
            with self._transaction(write, statements_alone, afterwards) as session:
                return work(session)

        try:
            async with self.admission.turn(write=write):
                return await self.admission.in_thread(in_thread)
        finally:
            self.admission.write_later(afterwards)

    @contextmanager
    def _transaction(
        self, write: bool, statements_alone: bool, afterwards: list[Callable[[], None]]
    ) -> Iterator[Session]:
        hooks: list[_CommitHook] = []
        writer = self._writer if write else None
        if writer is not None and not writer.acquire(timeout=WAIT_SECONDS):
            raise busy()
        try:
            with self._sessions() as session:
                try:
                    with session.begin():
                        session.info[_AFTERWARDS] = afterwards
                        session.info[_ON_COMMIT] = hooks
                        # Begin now, in this call, so the BEGIN sees the write intent.
                        token = _write_intent.set(write)
                        # Under READ COMMITTED every statement takes its own snapshot
                        # inside a transaction too; BEGIN and COMMIT are two round trips
                        # more than a lone statement takes (bench/README.md).
                        alone = statements_alone and self.dialect == "postgresql"
                        try:
                            session.connection(
                                execution_options={"isolation_level": "AUTOCOMMIT"}
                                if alone
                                else None
                            )
                        finally:
                            _write_intent.reset(token)
                        yield session
                except BaseException:
                    if writer is not None:
                        writer.release()
                        writer = None
                    _run_hooks(hooks, committed=False)
                    raise
                if writer is not None:
                    writer.release()
                    writer = None
                _run_hooks(hooks, committed=True)
        finally:
            if writer is not None:
                writer.release()

    def dispose(self) -> None:
        self.admission.close()
        self.engine.dispose()
