"""The search index's bulk path: a batch of profile writes indexed at once.

The triggers of migration 0003 index profiles row by row; the importer marks
its transaction instead and hands every batch to `bulk_index`, which applies
the batch's gram count changes in a few statements and feeds FTS5 once.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    Connection,
    Integer,
    String,
    column,
    delete,
    func,
    insert,
    select,
    table,
    update,
)
from sqlalchemy import text as sql
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from cadenya_server.models import Profile, ProfileSearchAccount, profile_search_bulk
from cadenya_server.profiles.search import grams

# What marks a bulk transaction on PostgreSQL (migration 0007).
BULK_SETTING = "cadenya.search_bulk"
# The first key of the advisory locks the gram count writers take (migration 0003).
LOCK_NAMESPACE = 0x53524348
# How many stripes an account's gram counts have on PostgreSQL (migration 0009): how many
# of its writers run at once.
STRIPES = 8
# FTS5 document ids of an account start at its number << DOC_BITS (migration 0003).
DOC_BITS = 36
docs = table(
    "profile_search_docs",
    column("docid", Integer),
    column("profile_id", String),
    column("name_key", String),
)


def dialect(session: Session) -> str:
    return session.get_bind().dialect.name


# A batch's profile ids as one JSON parameter: a list of bound values would run
# into SQLite's limit on parameters for a large batch.
_JSON_IDS = "(SELECT value FROM json_each(:ids))"

IndexedRow = tuple[str, str, str, str, dict[str, str]]
"""(id, type, name_key, search_text, labels) of a profile."""


class BulkIndex:
    """The profiles a batch writes, indexed together when the batch is done.

    `label_grams`: whether the account's label gram counts are kept (see
    mark_label_grams).
    """

    def __init__(self, session: Session, account_id: str, *, label_grams: bool) -> None:
        self._session = session
        self._account_id = account_id
        self._sqlite = dialect(session) == "sqlite"
        self._label_grams = label_grams
        self._removed: list[IndexedRow] = []
        self._replaced: set[str] = set()
        self._written: list[IndexedRow] = []
        self._added: list[IndexedRow] = []
        self._counting: list[tuple[list[IndexedRow], Callable[[], Counted]]] = []
        self._counted: list[dict[str, grams.Changes]] = []
        self._counted_labels: list[grams.LabelChanges] = []
        # SQLite: the FTS5 document id of every profile the batch wrote, once it is done.
        self.docids: dict[str, int] = {}

    def replacing(self, rows: list[IndexedRow]) -> None:
        """Profiles about to be rewritten: out of the index, before their UPDATE."""
        self._removed.extend(rows)
        self._replaced.update(row[0] for row in rows)
        if self._sqlite and rows:
            # A contentless FTS5 table forgets a document given exactly what it holds,
            # which the view still computes from the rows as they are.
            self._session.connection().exec_driver_sql(
                "INSERT INTO profile_search_fts (profile_search_fts, rowid, body, facets) "
                "SELECT 'delete', docid, body, facets FROM profile_search_documents "
                f"WHERE profile_id IN {_JSON_IDS}",
                {"ids": json.dumps([row[0] for row in rows])},
            )

    def written(
        self, rows: list[IndexedRow], *, counted: Callable[[], Counted] | None = None
    ) -> None:
        """Profiles inserted or rewritten, as they now are.

        `counted`: gives their gram count changes, if they are being counted already
        (count_additions); called once the documents are indexed, as late as can be.
        """
        self._written.extend(rows)
        if counted is None:
            self._added.extend(rows)
        else:
            self._counting.append((rows, counted))

    def _finish(self) -> None:
        account_no = _account_no(self._session, self._account_id)
        if self._sqlite and self._written:
            self._index_documents(account_no)
        for rows, counting in self._counting:
            counted = counting()
            if self._label_grams and counted[1] is None:
                self._added.extend(rows)
                continue
            self._counted.append(counted[0])
            if counted[1] is not None:
                self._counted_labels.append(counted[1])
        labels: grams.LabelChanges | None = None
        if self._label_grams:
            labels = {}
            for part in self._counted_labels:
                for label, counts in part.items():
                    labels.setdefault(label, Counter()).update(counts)
        changes = grams.changes(
            added=[row[1:] for row in self._added],
            removed=[row[1:] for row in self._removed],
            counted=self._counted,
            labels=labels,
        )
        count_grams(self._session, account_no, changes)
        if labels is not None:
            count_label_grams(self._session, account_no, labels)

    def _index_documents(self, account_no: int) -> None:
        """Document ids for new profiles, then every written profile into FTS5.

        What the triggers compute in SQL for one row at a time (the
        profile_search_documents view), computed here for the batch.
        """
        connection = self._session.connection()
        docids = self.docids
        if self._replaced:
            docids.update(
                connection.exec_driver_sql(
                    "SELECT profile_id, docid FROM profile_search_docs "
                    f"WHERE profile_id IN {_JSON_IDS}",
                    {"ids": json.dumps(list(self._replaced))},
                ).all()
            )
            connection.exec_driver_sql(
                "UPDATE profile_search_docs SET name_key = ? WHERE profile_id = ?",
                [(row[2], row[0]) for row in self._written if row[0] in docids],
            )
        new = sorted(row[0] for row in self._written if row[0] not in docids)
        if new:
            first = account_no << DOC_BITS
            last = self._session.scalar(
                select(func.max(docs.c.docid)).where(
                    docs.c.docid.between(first, first + (1 << DOC_BITS) - 1)
                )
            )
            # Numbered in id order, as the triggers number them in creation order.
            docids.update((id_, no) for no, id_ in enumerate(new, start=(last or first) + 1))
            name_keys = {row[0]: row[2] for row in self._written}
            connection.exec_driver_sql(
                "INSERT INTO profile_search_docs (docid, profile_id, name_key) VALUES (?, ?, ?)",
                [(docids[id_], id_, name_keys[id_]) for id_ in new],
            )
        facets = _Facets(connection, self._written)
        documents = sorted(
            (docids[id_], text, facets.tokens(type_, labels))
            for id_, type_, _, text, labels in self._written
        )
        # One statement for the batch, in document order: FTS5 writes its pending
        # terms out at every statement, and before a document id lower than the last.
        connection.exec_driver_sql(
            "INSERT INTO profile_search_fts (rowid, body, facets) "
            "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), "
            "json_extract(value, '$[2]') FROM json_each(?)",
            (json.dumps(documents, ensure_ascii=False),),
        )


def facet_token(facet_id: int) -> str:
    """The FTS5 token of a facet: three private-use characters (migration 0003)."""
    return "".join(
        chr(0xE000 + part)
        for part in (facet_id % 6400, facet_id // 6400 % 6400, facet_id // 40960000)
    )


class _Facets:
    """The facet tokens of profiles: one token per type and label (migration 0003)."""

    def __init__(self, connection: Connection, rows: list[IndexedRow]) -> None:
        names = sorted(
            {f"type:{row[1]}" for row in rows}
            | {f"label:{key}={value}" for row in rows for key, value in row[4].items()}
        )
        # Sorted, as the triggers' UNION hands new facets to the table.
        connection.exec_driver_sql(
            "INSERT OR IGNORE INTO profile_search_facets (facet) VALUES (?)",
            [(name,) for name in names],
        )
        self._ids: dict[str, int] = dict(
            connection.exec_driver_sql(
                "SELECT facet, id FROM profile_search_facets WHERE facet IN "
                "(SELECT value FROM json_each(?))",
                (json.dumps(names),),
            ).all()
        )
        self._tokens: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}

    def tokens(self, type_: str, labels: dict[str, str]) -> str:
        """What the view's `facets` column holds for a profile of this type and labels."""
        key = (type_, tuple(labels.items()))
        tokens = self._tokens.get(key)
        if tokens is None:
            ids = {self._ids[f"type:{type_}"]}
            ids.update(self._ids[f"label:{k}={v}"] for k, v in labels.items())
            tokens = " ".join(facet_token(n) for n in sorted(ids))
            self._tokens[key] = tokens
        return tokens


Counted = tuple[dict[str, grams.Changes], grams.LabelChanges | None]
"""A batch's gram count changes, and its label gram count changes if they were asked for."""


def count_additions(rows: list[grams.Row], *, label_grams: bool) -> Counted:
    """The count changes of adding these profiles (in a worker process, for the importer)."""
    labels: grams.LabelChanges | None = {} if label_grams else None
    return grams.additions(rows, labels=labels), labels


@contextmanager
def bulk_index(
    session: Session, *, account_id: str, label_grams: bool = False
) -> Iterator[BulkIndex]:
    """Index a batch of profile writes at once instead of row by row in the triggers.

    A mark tells the search triggers to stand aside: on SQLite a row in
    profile_search_bulk, on PostgreSQL a transaction-local setting, which a
    trigger's WHEN can read (migration 0007). Either lives only in this
    transaction, so every other writer keeps its triggers. Leaving the block by
    an exception indexes nothing: the transaction rolls back anyway.
    """
    _mark_bulk(session, True)
    index = BulkIndex(session, account_id, label_grams=label_grams)
    yield index
    index._finish()
    _mark_bulk(session, False)


def _mark_bulk(session: Session, on: bool) -> None:
    if dialect(session) == "postgresql":
        session.execute(select(func.set_config(BULK_SETTING, "on" if on else "off", True)))
    elif on:
        session.execute(insert(profile_search_bulk).values(active=True))
    else:
        session.execute(delete(profile_search_bulk))


def mark_label_grams(session: Session, account_id: str) -> None:
    """Count the account's label grams from now on, starting with the profiles it has.

    Inside a bulk_index block, before the batch writes anything: the triggers
    stand aside for this transaction, and count the account's label grams in
    every other one once it commits. Holding every stripe keeps out any writer
    that has not committed yet, so the profiles counted here are all there are.
    """
    hold_all_stripes(session, account_id)
    if label_grams_marked(session, account_id):
        # Another import marked it while this one waited.
        return
    account_no = _account_no(session, account_id)
    rows = session.execute(
        select(Profile.search_text, Profile.labels)
        .where(Profile.account_id == account_id)
        .execution_options(yield_per=10_000)
    )
    count_label_grams(session, account_no, grams.label_additions(rows))
    session.execute(
        update(ProfileSearchAccount)
        .where(ProfileSearchAccount.no == account_no)
        .values(label_grams=True)
    )


def label_grams_marked(session: Session, account_id: str) -> bool:
    """Whether the account's label grams are counted."""
    return bool(
        session.scalar(
            select(ProfileSearchAccount.label_grams).where(
                ProfileSearchAccount.account_id == account_id
            )
        )
    )


def _account_no(session: Session, account_id: str) -> int:
    """The account's number (given one if it has none yet), with a stripe of its counts
    held on PostgreSQL (see hold_stripe)."""
    account_no = number(session, account_id)
    if dialect(session) == "postgresql":
        _stripe(session, account_no)
    return account_no


def number(session: Session, account_id: str) -> int:
    """The account's number, given one if it has none yet."""
    account_no = session.scalar(
        select(ProfileSearchAccount.no).where(ProfileSearchAccount.account_id == account_id)
    )
    if account_no is None:
        insert_new = postgresql_insert if dialect(session) == "postgresql" else sqlite_insert
        session.execute(
            insert_new(ProfileSearchAccount).values(account_id=account_id).on_conflict_do_nothing()
        )
        account_no = session.scalar(
            select(ProfileSearchAccount.no).where(ProfileSearchAccount.account_id == account_id)
        )
    return account_no


def _stripe(session: Session, account_no: int) -> int:
    """The stripe of the account's counts this transaction writes, taken if it holds none:
    the triggers' (migration 0009), so a batch and its triggers share one."""
    return session.scalar(select(func.profile_search_stripe(account_no)))


def hold_stripe(session: Session, account_id: str) -> None:
    """Take a stripe of the account's gram counts until the transaction ends (PostgreSQL).

    At most STRIPES writers of an account hold one at a time: a writer that holds one
    knows that at most STRIPES - 1 others are between taking theirs and committing.
    """
    if dialect(session) == "postgresql":
        _account_no(session, account_id)


def hold_all_stripes(session: Session, account_id: str) -> None:
    """Wait for every writer of the account's counts to commit, and keep the others out
    until the transaction ends (PostgreSQL; on SQLite a writer is alone anyway).

    Call it before anything else that takes a stripe in the transaction: the stripes
    are taken in order, so two callers cannot deadlock.
    """
    if dialect(session) != "postgresql":
        return
    account_no = number(session, account_id)
    for stripe in range(STRIPES):
        session.execute(
            select(func.pg_advisory_xact_lock(LOCK_NAMESPACE, account_no * STRIPES + stripe))
        )


def count_grams(session: Session, account_no: int, changes: dict[str, grams.Changes]) -> None:
    """Apply gram count changes to the account numbered `account_no` (see _account_no)."""
    widened, lowered = [], []
    for type_, change in changes.items():
        for gram, n in change.n.items():
            if gram in change.lo:
                widened.append((gram, type_, n, change.lo[gram], change.hi[gram]))
            elif n:
                lowered.append((gram, type_, n))
    if dialect(session) == "postgresql":
        stripe = _stripe(session, account_no)
        _count_grams_postgresql(session.connection(), account_no, stripe, widened, lowered)
        return
    connection = session.connection()
    if widened:
        connection.exec_driver_sql(
            "INSERT INTO profile_search_grams (account_no, gram, type, n, lo, hi) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (account_no, gram, type) DO UPDATE "
            "SET n = n + excluded.n, lo = min(lo, excluded.lo), hi = max(hi, excluded.hi)",
            [(account_no, *row) for row in widened],
        )
    if lowered:
        key = "account_no = ? AND gram = ? AND type = ?"
        connection.exec_driver_sql(
            f"UPDATE profile_search_grams SET n = n + ? WHERE {key}",
            [(n, account_no, gram, type_) for gram, type_, n in lowered],
        )
        connection.exec_driver_sql(
            f"DELETE FROM profile_search_grams WHERE {key} AND n <= 0",
            [(account_no, gram, type_) for gram, type_, _ in lowered],
        )


def _count_grams_postgresql(
    connection: Connection,
    account_no: int,
    stripe: int,
    widened: list[tuple[str, str, int, str, str]],
    lowered: list[tuple[str, str, int]],
) -> None:
    """The changes through a temporary table (see copy_into_temporary), into the stripe
    this transaction holds (migration 0009)."""
    if not widened and not lowered:
        return
    copy_into_temporary(
        connection,
        'profile_search_grams_batch (gram text COLLATE "C", type text, n integer, '
        'lo text COLLATE "C", hi text COLLATE "C")',
        # No name keys for the lowered: the gram is in no profile the batch wrote, only
        # in some it replaced.
        [*widened, *((*row, None, None) for row in lowered)],
    )
    # A lowered gram this stripe does not hold yet takes the bounds of the stripes that
    # do: they cover the profile it no longer counts, and bounds may always widen.
    connection.execute(
        sql(
            "INSERT INTO profile_search_grams AS g (account_no, gram, type, stripe, n, lo, hi) "
            "SELECT :no, b.gram, b.type, :stripe, b.n, "
            "coalesce(b.lo, o.lo, ''), coalesce(b.hi, o.hi, '') "
            "FROM profile_search_grams_batch AS b LEFT JOIN LATERAL ("
            "SELECT min(x.lo) AS lo, max(x.hi) AS hi FROM profile_search_grams AS x "
            "WHERE b.lo IS NULL AND x.account_no = :no AND x.gram = b.gram AND x.type = b.type"
            ") AS o ON true ORDER BY b.gram, b.type "
            "ON CONFLICT (account_no, gram, type, stripe) DO UPDATE "
            "SET n = g.n + excluded.n, lo = least(g.lo, excluded.lo), "
            "hi = greatest(g.hi, excluded.hi)"
        ),
        {"no": account_no, "stripe": stripe},
    )


def count_label_grams(session: Session, account_no: int, changes: grams.LabelChanges) -> None:
    """Apply label gram count changes."""
    rows = [
        (label, gram, n) for label, counts in changes.items() for gram, n in counts.items() if n
    ]
    if not rows:
        return
    connection = session.connection()
    if dialect(session) == "sqlite":
        key = "account_no = ? AND label = ? AND gram = ?"
        connection.exec_driver_sql(
            "INSERT INTO profile_search_label_grams (account_no, label, gram, n) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (account_no, label, gram) DO UPDATE "
            "SET n = n + excluded.n",
            [(account_no, *row) for row in rows],
        )
        lowered = [(account_no, label, gram) for label, gram, n in rows if n < 0]
        if lowered:
            connection.exec_driver_sql(
                f"DELETE FROM profile_search_label_grams WHERE {key} AND n <= 0", lowered
            )
        return
    copy_into_temporary(
        connection,
        'profile_search_label_grams_batch (label text COLLATE "C", gram text COLLATE "C", '
        "n integer)",
        rows,
    )
    # Rows at zero stay, as the triggers leave them (migration 0009).
    connection.execute(
        sql(
            "INSERT INTO profile_search_label_grams AS g (account_no, label, gram, stripe, n) "
            "SELECT :no, label, gram, :stripe, n "
            "FROM profile_search_label_grams_batch ORDER BY label, gram "
            "ON CONFLICT (account_no, label, gram, stripe) DO UPDATE SET n = g.n + excluded.n"
        ),
        {"no": account_no, "stripe": _stripe(session, account_no)},
    )


def copy_into_temporary(connection: Connection, table: str, rows: list[tuple]) -> None:
    """Rows into a new temporary table (`name (columns)`), dropped at commit, by COPY.

    As parameters, psycopg would send a statement per row, or quote arrays element
    by element in Python.
    """
    name = table.partition(" ")[0]
    # One transaction may fill it twice (mark_label_grams, then the batch's own counts).
    connection.exec_driver_sql(f"DROP TABLE IF EXISTS pg_temp.{name}")
    connection.exec_driver_sql(f"CREATE TEMPORARY TABLE {table} ON COMMIT DROP")
    copy_rows(connection, f"COPY {name} FROM STDIN", rows)


def copy_rows(connection: Connection, statement: str, rows: Iterable[tuple[Any, ...]]) -> None:
    """Rows into PostgreSQL by a `COPY … FROM STDIN` statement, through psycopg's cursor."""
    cursor = connection.connection.driver_connection.cursor()
    with cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)
