"""The benchmark's data: a deterministic data set in a database of its own, loaded through
the import path of `cadenya-server profiles import`, and what it occupies on disk.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import secrets
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from cadenya_server import demo_data
from cadenya_server.accounts import service as accounts
from cadenya_server.config import Settings
from cadenya_server.kit import migrate
from cadenya_server.kit.db import engine_url
from cadenya_server.kit.runtime import Runtime
from cadenya_server.models import Account
from cadenya_server.profiles import importer

MAIN_SEED = 7
MAIN_DOMAIN = "acme.io"
# The tables of the schema before any search structure: whatever else the
# database holds (FTS tables, n-gram tables, ...) counts as search index.
BASE_TABLES = frozenset(
    {
        "accounts",
        "account_secrets",
        "profiles",
        "profile_labels",
        "workspaces",
        "api_keys",
        "workspace_members",
        "api_key_workspaces",
        "trusted_endpoints",
        "audit_events",
        "alembic_version",
    }
)
# The indexes `profiles` had before the search index: the primary key, email
# uniqueness and the name order. Any other index on it was added for the search.
BASE_PROFILES_INDEXES = frozenset(
    {
        "pk_profiles",
        "sqlite_autoindex_profiles_1",
        "ix_profiles_account_id_email_key",
        "ix_profiles_account_id_name_key_id",
        "ix_profiles_account_id_type_name_key_id",
    }
)
# The indexes `profile_labels` had before the search index (on SQLite its old
# primary key is now the unique index on (profile_id, key)); any other one (the
# label walk's on PostgreSQL, migration 0006) was added for the search.
BASE_LABEL_INDEXES = frozenset(
    {
        "pk_profile_labels",
        "sqlite_autoindex_profile_labels_1",
        "ix_profile_labels_account_id_key_value_profile_id",
        "ix_profile_labels_profile_id_key",
    }
)
# What the copies of name_key and search_text in profile_labels take (migration 0006).
LABEL_TEXT_BYTES = {
    "postgresql": "SELECT sum(pg_column_size(name_key) + pg_column_size(search_text))"
    " FROM profile_labels",
    "sqlite": "SELECT sum(length(CAST(name_key AS BLOB)) + length(CAST(search_text AS BLOB)))"
    " FROM profile_labels",
}


class BenchError(Exception):
    """The benchmark cannot run or produced something inconsistent; the message says why."""


@dataclass(frozen=True)
class DataSpec:
    profiles: int
    other_accounts: int
    per_account: int


def add_data_set_arguments(parser: argparse.ArgumentParser, data_dir: Path) -> None:
    """What a benchmark on this data set takes: its size, reuse, and where it lives."""
    parser.add_argument("--profiles", type=int, default=1_000_000, help="in the main account")
    parser.add_argument("--other-accounts", type=int, default=100)
    parser.add_argument("--per-account", type=int, default=2000, help="profiles per other account")
    parser.add_argument("--reuse", action="store_true", help="reuse the data set already loaded")
    parser.add_argument("--data-dir", type=Path, default=data_dir)
    parser.add_argument(
        "--postgres-database",
        default="cadenya_bench",
        help="the benchmark's database, dropped and created again unless --reuse",
    )


@dataclass(frozen=True)
class Target:
    """Where one benchmark's data lives."""

    kind: str
    url: str
    manifest: Path
    # PostgreSQL only: a database on the same server to create and drop from,
    # and the benchmark's own database, which it drops and creates at will.
    admin_url: str = ""
    database: str = ""

    @classmethod
    def sqlite(cls, data_dir: Path) -> Target:
        path = data_dir / "search-sqlite.db"
        return cls("sqlite", f"sqlite:///{path}", data_dir / "search-sqlite.json")

    @classmethod
    def postgresql(cls, data_dir: Path, server_url: str, database: str) -> Target:
        url = make_url(server_url).set(database=database)
        return cls(
            "postgresql",
            url.render_as_string(hide_password=False),
            data_dir / f"search-postgresql-{database}.json",
            admin_url=server_url,
            database=database,
        )

    def check_reachable(self) -> None:
        if self.kind != "postgresql":
            return
        engine = create_engine(engine_url(self.admin_url), connect_args={"connect_timeout": 5})
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except OperationalError as exc:
            raise BenchError(
                f"PostgreSQL at {self.admin_url} is unreachable; pass --postgres-url "
                "or run with --database sqlite"
            ) from exc
        finally:
            engine.dispose()

    def reset(self) -> None:
        """An empty database in place of whatever was there."""
        if self.kind == "sqlite":
            path = Path(make_url(self.url).database or "")
            for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                stale.unlink(missing_ok=True)
            return
        engine = create_engine(engine_url(self.admin_url), isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{self.database}"'))
        engine.dispose()


@dataclass(frozen=True)
class Loaded:
    """A loaded data set: whom to call it as, and how long loading it took."""

    account_id: str
    api_key: str
    secret_key: str
    load: dict[str, Any]
    reused: bool


def runtime_for(target: Target, secret_key: str) -> Runtime:
    """What the server holds, built in this process for direct database access."""
    return Runtime.from_settings(
        Settings(
            database_url=target.url,
            secret_key=secret_key,
            issuer="cadenya-server",
            audience="cadenya-api",
            max_body_bytes=1024 * 1024,
            jwt_leeway_seconds=30,
        )
    )


def prepare(target: Target, spec: DataSpec, *, reuse: bool, data_dir: Path) -> Loaded:
    """The loaded data set: the kept one when `reuse` allows it, else a fresh load."""
    if reuse:
        kept = _kept(target, spec)
        if kept is not None:
            progress(f"{target.kind}: reusing the data set loaded on {kept.load['loaded_at']}")
            return kept
    target.reset()
    secret_key = secrets.token_urlsafe(48)
    runtime = runtime_for(target, secret_key)
    try:
        migrate.upgrade(runtime.db.engine)
        loaded = _load(runtime, target, spec, secret_key, data_dir)
    finally:
        runtime.db.dispose()
    target.manifest.write_text(
        json.dumps(
            {
                "spec": asdict(spec),
                "schema": _schema_fingerprint(),
                "accountId": loaded.account_id,
                "apiKey": loaded.api_key,
                "secretKey": loaded.secret_key,
                "load": loaded.load,
            },
            indent=2,
        )
    )
    return loaded


def _kept(target: Target, spec: DataSpec) -> Loaded | None:
    """The data set of an earlier run, if it has this shape and the current schema."""
    if not target.manifest.is_file():
        return None
    manifest = json.loads(target.manifest.read_text())
    if manifest.get("spec") != asdict(spec):
        progress(f"{target.kind}: the kept data set has another size; loading afresh")
        return None
    # Migrations are still edited in place while the search is developed: a
    # revision number alone would not tell that the schema changed.
    if manifest.get("schema") != _schema_fingerprint():
        progress(f"{target.kind}: the migrations changed since the load; loading afresh")
        return None
    loaded = Loaded(
        account_id=manifest["accountId"],
        api_key=manifest["apiKey"],
        secret_key=manifest["secretKey"],
        load=manifest["load"],
        reused=True,
    )
    runtime = runtime_for(target, loaded.secret_key)
    try:
        with runtime.db.transaction(write=False) as session:
            if session.get(Account, loaded.account_id) is None:
                return None
    except OperationalError:
        return None
    finally:
        runtime.db.dispose()
    return loaded


def _schema_fingerprint() -> str:
    """A hash of every migration the package ships."""
    digest = hashlib.sha256()
    for path in sorted((migrate.MIGRATIONS / "versions").glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _load(
    runtime: Runtime, target: Target, spec: DataSpec, secret_key: str, data_dir: Path
) -> Loaded:
    started = time.perf_counter()
    for n in range(spec.other_accounts):
        account_id, _ = _create_account(runtime, name=f"Other {n}", domain=f"other{n}.example")
        _import(runtime, account_id, demo_data.profiles(spec.per_account, seed=1000 + n))
        if (n + 1) % 10 == 0 or n + 1 == spec.other_accounts:
            progress(f"{target.kind}: loaded {n + 1}/{spec.other_accounts} other accounts")
    others_seconds = time.perf_counter() - started

    account_id, api_key = _create_account(runtime, name="Acme", domain=MAIN_DOMAIN)
    # The records go through a JSON Lines file, as `cadenya-server profiles import` reads them.
    path = data_dir / f"profiles-{target.kind}.jsonl"
    started = time.perf_counter()
    with path.open("w", encoding="utf-8") as handle:
        for record in demo_data.profiles(spec.profiles, seed=MAIN_SEED):
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    generate_seconds = time.perf_counter() - started
    progress(f"{target.kind}: importing {spec.profiles:,} profiles into one account")
    started = time.perf_counter()
    report = importer.import_records(
        db=runtime.db,
        account_id=account_id,
        records=importer.read_file(path),
        on_progress=_Progress(f"{target.kind}: imported", spec.profiles),
    )
    import_seconds = time.perf_counter() - started
    path.unlink()
    if report.errors or report.inserted != spec.profiles:
        raise BenchError(
            f"the import inserted {report.inserted} of {spec.profiles} profiles; "
            f"first errors: {report.errors[:3]}"
        )
    started = time.perf_counter()
    _settle(runtime)
    settle_seconds = time.perf_counter() - started
    progress(f"{target.kind}: imported in {import_seconds:.1f} s")
    return Loaded(
        account_id=account_id,
        api_key=api_key,
        secret_key=secret_key,
        load={
            "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "main_profiles": spec.profiles,
            "main_import_seconds": round(import_seconds, 2),
            "main_profiles_per_second": round(spec.profiles / import_seconds),
            "generate_seconds": round(generate_seconds, 2),
            "other_accounts_seconds": round(others_seconds, 2),
            "settle_seconds": round(settle_seconds, 2),
        },
        reused=False,
    )


class _Progress:
    """Says how far an import has come, every tenth of the way."""

    def __init__(self, label: str, total: int) -> None:
        self._label, self._total, self._done, self._said = label, total, 0, 0

    def __call__(self, count: int) -> None:
        self._done += count
        if self._done - self._said >= self._total / 10 or self._done >= self._total:
            self._said = self._done
            progress(f"{self._label} {self._done:,}/{self._total:,}")


def _create_account(runtime: Runtime, *, name: str, domain: str) -> tuple[str, str]:
    with runtime.db.transaction() as session:
        created = accounts.create(
            session=session,
            keyring=runtime.keyring,
            name=name,
            domain=domain,
            admin_email=f"admin@{domain}",
            admin_name=f"{name} Admin",
        )
    return created.account.id, created.api_key


def _import(runtime: Runtime, account_id: str, records: Iterable[dict[str, Any]]) -> None:
    report = importer.import_records(
        db=runtime.db, account_id=account_id, records=enumerate(records, start=1)
    )
    if report.errors:
        raise BenchError(f"import into {account_id} rejected rows: {report.errors[:3]}")


def _settle(runtime: Runtime) -> None:
    """The state a production database reaches on its own shortly after a bulk load."""
    engine = runtime.db.engine
    if runtime.db.dialect == "postgresql":
        # What autovacuum does within minutes: planner statistics and the visibility map.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM (ANALYZE)"))
        return
    # Fold the write-ahead log into the database file, so sizes read from the file.
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def sizes(runtime: Runtime) -> dict[str, Any]:
    """Bytes per table and per index, and the search index's size against the profiles table."""
    with runtime.db.engine.connect() as connection:
        if runtime.db.dialect == "postgresql":
            tables = [
                {"name": name, "table_bytes": heap, "indexes_bytes": indexes, "total_bytes": total}
                for name, heap, indexes, total in connection.execute(
                    text(
                        "SELECT relname, pg_relation_size(oid), pg_indexes_size(oid),"
                        " pg_total_relation_size(oid) FROM pg_class"
                        " WHERE relkind IN ('r', 'm') AND relnamespace = 'public'::regnamespace"
                    )
                )
            ]
            indexes = [
                {"name": name, "table": table, "bytes": size}
                for name, table, size in connection.execute(
                    text(
                        "SELECT i.relname, t.relname, pg_relation_size(i.oid)"
                        " FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
                        " JOIN pg_class t ON t.oid = x.indrelid"
                        " WHERE t.relnamespace = 'public'::regnamespace"
                    )
                )
            ]
            method = "pg_relation_size / pg_indexes_size / pg_total_relation_size"
        else:
            tables, indexes, method = _sqlite_sizes(connection)
        label_text = connection.exec_driver_sql(LABEL_TEXT_BYTES[runtime.db.dialect]).scalar() or 0
    tables.sort(key=lambda t: -t["total_bytes"])
    indexes.sort(key=lambda i: -i["bytes"])
    by_name = {t["name"]: t for t in tables}
    profiles_bytes = by_name.get("profiles", {}).get("table_bytes", 0)
    profiles_indexes = by_name.get("profiles", {}).get("indexes_bytes", 0)
    search_tables = sum(
        t["total_bytes"]
        for t in tables
        if t["name"] not in BASE_TABLES and not t["name"].startswith("sqlite_")
    )
    label_walk = label_text + sum(
        i["bytes"]
        for i in indexes
        if i["table"] == "profile_labels" and i["name"] not in BASE_LABEL_INDEXES
    )
    search_bytes = profiles_indexes + search_tables + label_walk
    added = (
        search_tables
        + label_walk
        + sum(
            i["bytes"]
            for i in indexes
            if i["table"] == "profiles" and i["name"] not in BASE_PROFILES_INDEXES
        )
    )
    return {
        "method": method,
        "tables": tables,
        "indexes": indexes,
        "profiles_table_bytes": profiles_bytes,
        "profiles_indexes_bytes": profiles_indexes,
        "search_tables_bytes": search_tables,
        "label_walk_bytes": label_walk,
        "search_index_bytes": search_bytes,
        "index_to_table": round(search_bytes / profiles_bytes, 2) if profiles_bytes else None,
        "search_added_bytes": added,
        "added_to_table": round(added / profiles_bytes, 2) if profiles_bytes else None,
    }


def _sqlite_sizes(connection: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    objects = {
        name: (kind, table)
        for kind, name, table in connection.exec_driver_sql(
            "SELECT type, name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index')"
        )
    }
    try:
        used = dict(
            connection.exec_driver_sql("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name").all()
        )
    except OperationalError:
        # Built without dbstat: only the whole file's size is known.
        page_size = connection.exec_driver_sql("PRAGMA page_size").scalar()
        pages = connection.exec_driver_sql("PRAGMA page_count").scalar()
        return (
            [
                {
                    "name": "(file)",
                    "table_bytes": pages * page_size,
                    "indexes_bytes": 0,
                    "total_bytes": pages * page_size,
                }
            ],
            [],
            "page_count × page_size (no dbstat)",
        )
    indexes = [
        {"name": name, "table": objects[name][1], "bytes": size}
        for name, size in used.items()
        if objects.get(name, ("", ""))[0] == "index"
    ]
    tables = []
    for name, (kind, _) in objects.items():
        if kind != "table":
            continue
        own = sum(i["bytes"] for i in indexes if i["table"] == name)
        heap = used.get(name, 0)
        tables.append(
            {"name": name, "table_bytes": heap, "indexes_bytes": own, "total_bytes": heap + own}
        )
    return tables, indexes, "dbstat: SUM(pgsize) per table and index"


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
