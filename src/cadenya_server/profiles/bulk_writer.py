"""The importer's bulk writer: a batch's rows straight to the driver, in raw SQL.

SQLite takes executemany of plain INSERTs, PostgreSQL takes COPY; both skip the
ORM, whose per-row work outweighed the database's (see bench/README.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection
from sqlalchemy import text as sql
from sqlalchemy.orm import Session

from cadenya_server.kit.db import Database
from cadenya_server.models import Profile
from cadenya_server.profiles.search import index

Record = dict[str, Any]
# SQLite's page cache for the importer's connection, in KiB: the indexes a batch
# inserts into at random (emails, names, the search walk) stay in memory.
SQLITE_CACHE_KIB = 1 << 20

_PROFILE_COLUMNS = (
    "id, account_id, type, role, name, email, email_key, name_key, search_text, "
    "external_id, labels, creator_profile_id, created_at, updated_at"
)


class BulkWriter:
    """A batch's rows, straight to the driver (SQLite) or by COPY (PostgreSQL).

    The ORM's bulk insert spent longer preparing each row than the database took
    to store it.
    """

    def __init__(self, session: Session) -> None:
        self._connection: Connection = session.connection()
        self._dialect = self._connection.dialect
        self._sqlite = self._dialect.name == "sqlite"
        if self._sqlite:
            self._connection.exec_driver_sql(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
        else:
            # The server's connections plan every run of a prepared statement afresh
            # (kit.db), which PostgreSQL also applies to the foreign keys' checks: a
            # COPY planned the same lookup once per row (bench/README.md).
            self._connection.exec_driver_sql("SET LOCAL plan_cache_mode = auto")

    def existing(self, account_id: str, email_keys: list[str]) -> dict[str, index.IndexedRow]:
        """The account's profiles with these email keys, by email key."""
        if self._sqlite:
            statement = (
                "SELECT email_key, id, type, name_key, search_text, labels FROM profiles "
                "WHERE account_id = ? AND email_key IN (SELECT value FROM json_each(?))"
            )
            keys: str = json.dumps(email_keys)
        else:
            # One text for the keys: psycopg would quote an array element by element.
            # An email never holds a control character, so none holds a line feed.
            statement = (
                "SELECT email_key, id, type, name_key, search_text, labels FROM profiles "
                "WHERE account_id = %s AND email_key = ANY(string_to_array(%s, E'\\n'))"
            )
            keys = "\n".join(email_keys)
        rows = self._connection.exec_driver_sql(statement, (account_id, keys))
        return {
            key: (id_, type_, name_key, text_, json.loads(labels) if self._sqlite else labels)
            for key, id_, type_, name_key, text_, labels in rows
        }

    def insert_profiles(
        self,
        rows: list[Record],
        *,
        account_id: str,
        creator: str,
        stamp: Any,
        docs: list[int] | None = None,
    ) -> None:
        """`docs`: the rows' document numbers, for an account that keeps bitmaps
        (PostgreSQL's profiles.search_doc, migration 0013)."""
        if self._sqlite:
            stamp = self._bind("created_at", stamp)
        values = [
            (
                r["id"],
                account_id,
                r["type"],
                r["role"],
                r["name"],
                r["email"],
                r["email_key"],
                r["name_key"],
                r["search_text"],
                r["external_id"],
                r["labels_json"],
                creator,
                stamp,
                stamp,
            )
            for r in rows
        ]
        if self._sqlite:
            self._connection.exec_driver_sql(
                f"INSERT INTO profiles ({_PROFILE_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
        elif docs is None:
            index.copy_rows(
                self._connection, f"COPY profiles ({_PROFILE_COLUMNS}) FROM STDIN", values
            )
        else:
            index.copy_rows(
                self._connection,
                f"COPY profiles ({_PROFILE_COLUMNS}, search_doc) FROM STDIN",
                ((*row, doc) for row, doc in zip(values, docs, strict=True)),
            )

    def update_profiles(self, rows: list[Record], *, stamp: Any) -> None:
        """Rewrite profiles by id; a role the row leaves out stays as it is."""
        mark = "?" if self._sqlite else "%s"
        labels = mark if self._sqlite else "%s::jsonb"
        self._connection.exec_driver_sql(
            f"UPDATE profiles SET type = {mark}, role = coalesce({mark}, role), name = {mark}, "
            f"email = {mark}, email_key = {mark}, name_key = {mark}, search_text = {mark}, "
            f"external_id = {mark}, labels = {labels}, updated_at = {mark} WHERE id = {mark}",
            [
                (
                    r["type"],
                    r.get("role"),
                    r["name"],
                    r["email"],
                    r["email_key"],
                    r["name_key"],
                    r["search_text"],
                    r["external_id"],
                    r["labels_json"],
                    self._bind("updated_at", stamp) if self._sqlite else stamp,
                    r["id"],
                )
                for r in rows
            ],
        )
        ids = [r["id"] for r in rows]
        if self._sqlite:
            self._connection.exec_driver_sql(
                "DELETE FROM profile_labels WHERE profile_id IN (SELECT value FROM json_each(?))",
                (json.dumps(ids),),
            )
        else:
            self._connection.exec_driver_sql(
                "DELETE FROM profile_labels WHERE profile_id = ANY(%s)", (ids,)
            )

    def insert_labels(self, rows: list[tuple[str, str, str, str, str, str]]) -> None:
        """(profile id, account id, key, value, name_key, search_text) rows."""
        if not rows:
            return
        columns = "profile_id, account_id, key, value, name_key, search_text"
        if self._sqlite:
            self._connection.exec_driver_sql(
                f"INSERT INTO profile_labels ({columns}) VALUES (?, ?, ?, ?, ?, ?)", rows
            )
        else:
            index.copy_rows(self._connection, f"COPY profile_labels ({columns}) FROM STDIN", rows)

    def _bind(self, column: str, value: Any) -> Any:
        """A value as the column's type stores it (SQLite keeps datetimes as text)."""
        type_ = Profile.__table__.c[column].type.dialect_impl(self._dialect)
        process = type_.bind_processor(self._dialect)
        return process(value) if process else value


@contextmanager
def sqlite_cache_restored(db: Database) -> Iterator[None]:
    """The connection's own page cache size again after the import's (see BulkWriter)."""
    if db.dialect != "sqlite":
        yield
        return
    with db.transaction(write=False) as session:
        size = session.connection().exec_driver_sql("PRAGMA cache_size").scalar()
    try:
        yield
    finally:
        with db.transaction(write=False) as session:
            session.connection().exec_driver_sql(f"PRAGMA cache_size = {int(size)}")


def refresh_statistics(db: Database) -> None:
    """Fresh PostgreSQL planner statistics for the profiles table."""
    # A bulk load outruns autovacuum. While the statistics still see the account as
    # small, PostgreSQL plans each batch's email lookup as a scan of the whole
    # account, so every batch is slower than the last. Refreshed after batches 1, 2, 4,
    # 8, … they stay within a factor of two of the truth for a handful of ANALYZEs.
    if db.dialect == "postgresql":
        with db.transaction() as session:
            session.execute(sql("ANALYZE profiles"))
