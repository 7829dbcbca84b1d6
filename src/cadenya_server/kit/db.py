"""The engine, one transaction per request, and the two dialects' differences."""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import Session, sessionmaker

# Set for requests that will write: SQLite then takes the write lock up front
# (BEGIN IMMEDIATE), so two writers queue on busy_timeout instead of one of
# them failing when it upgrades a read lock.
_write_intent: contextvars.ContextVar[bool] = contextvars.ContextVar("write_intent", default=False)
# A PostgreSQL connection back from the pool after this long idle is pinged first.
PING_AFTER_IDLE_SECONDS = 1.0


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
            # The connection used last has the warmest page cache.
            pool_use_lifo=True,
            **kwargs,
        )
        _configure_sqlite(engine)
        return engine
    engine = create_engine(
        parsed,
        pool_size=10,
        max_overflow=20,
        pool_timeout=10,
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


def after_transaction(session: Session, work: Callable[[], None]) -> None:
    """Run `work` when this session's transaction is over and its connection is back.

    For bookkeeping that must not hold, or wait for, the request's locks (on
    SQLite a second writer would wait for the request's own write lock). `work`
    handles its own errors.
    """
    session.info[_AFTERWARDS].append(work)


class Database:
    """An engine and the sessions made from it."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.engine = make_engine(url, **engine_kwargs)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

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
            with self._sessions() as session, session.begin():
                session.info[_AFTERWARDS] = afterwards
                # Begin now, in this call, so the BEGIN sees the write intent.
                token = _write_intent.set(write)
                # Under READ COMMITTED every statement takes its own snapshot inside a
                # transaction too; BEGIN and COMMIT are two round trips more than a lone
                # statement takes (bench/README.md).
                alone = statements_alone and self.dialect == "postgresql"
                try:
                    session.connection(
                        execution_options={"isolation_level": "AUTOCOMMIT"} if alone else None
                    )
                finally:
                    _write_intent.reset(token)
                yield session
        finally:
            for work in afterwards:
                work()

    def dispose(self) -> None:
        self.engine.dispose()
