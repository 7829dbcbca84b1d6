"""The search index's bulk path: a batch of profile writes indexed at once.

The triggers of migration 0003 index profiles row by row; the importer marks
its transaction instead and hands every batch to `bulk_index`, which applies
the batch's gram count changes in a few statements and feeds FTS5 once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import (
    ARRAY,
    Integer,
    String,
    Text,
    bindparam,
    column,
    delete,
    func,
    insert,
    literal,
    select,
    table,
    update,
)
from sqlalchemy import text as sql
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from cadenya_server.models import ProfileSearchAccount, ProfileSearchGram, profile_search_bulk
from cadenya_server.profiles import grams

# The first key of the advisory lock the gram count writers take (migration 0003).
LOCK_NAMESPACE = 0x53524348
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


IndexedRow = tuple[str, str, str, str]
"""(id, type, name_key, search_text) of a profile."""


class BulkIndex:
    """The profiles a batch writes, indexed together when the batch is done."""

    def __init__(self, session: Session, account_id: str) -> None:
        self._session = session
        self._account_id = account_id
        self._sqlite = dialect(session) == "sqlite"
        self._added: list[grams.Row] = []
        self._removed: list[grams.Row] = []
        self._written: list[str] = []

    def replacing(self, rows: list[IndexedRow]) -> None:
        """Profiles about to be rewritten: out of the index, before their UPDATE."""
        self._removed.extend((type_, name_key, text) for _, type_, name_key, text in rows)
        if self._sqlite and rows:
            # A contentless FTS5 table forgets a document given exactly what it holds,
            # which the view still computes from the rows as they are.
            self._session.execute(
                sql(
                    "INSERT INTO profile_search_fts (profile_search_fts, rowid, body, facets) "
                    "SELECT 'delete', docid, body, facets FROM profile_search_documents "
                    "WHERE profile_id IN :ids"
                ).bindparams(bindparam("ids", expanding=True)),
                {"ids": [row[0] for row in rows]},
            )

    def written(self, rows: list[IndexedRow]) -> None:
        """Profiles inserted or rewritten."""
        self._added.extend((type_, name_key, text) for _, type_, name_key, text in rows)
        self._written.extend(row[0] for row in rows)

    def _finish(self) -> None:
        changes = grams.changes(added=self._added, removed=self._removed)
        account_no = count_grams(self._session, self._account_id, changes)
        if self._sqlite and self._written:
            self._index_documents(account_no)

    def _index_documents(self, account_no: int) -> None:
        """New document ids for new profiles, then every written profile into FTS5."""
        first = account_no << DOC_BITS
        last = self._session.scalar(
            select(func.max(docs.c.docid)).where(
                docs.c.docid.between(first, first + (1 << DOC_BITS) - 1)
            )
        )
        ids = {"ids": self._written}
        for statement in (
            "INSERT INTO profile_search_docs (docid, profile_id, name_key) "
            "SELECT :last + row_number() OVER (ORDER BY pr.id), pr.id, pr.name_key "
            "FROM profiles AS pr "
            "WHERE pr.id IN :ids AND pr.id NOT IN (SELECT profile_id FROM profile_search_docs)",
            "UPDATE profile_search_docs "
            "SET name_key = (SELECT name_key FROM profiles WHERE id = profile_id) "
            "WHERE profile_id IN :ids",
            "INSERT OR IGNORE INTO profile_search_facets (facet) "
            "SELECT 'type:' || type FROM profiles WHERE id IN :ids UNION "
            "SELECT 'label:' || j.key || '=' || j.value "
            "FROM profiles AS pr, json_each(pr.labels) AS j WHERE pr.id IN :ids",
            # One statement for the batch: FTS5 writes its pending terms out at
            # every statement, so row by row it would write (and merge) tiny segments.
            "INSERT INTO profile_search_fts (rowid, body, facets) "
            "SELECT docid, body, facets FROM profile_search_documents WHERE profile_id IN :ids",
        ):
            self._session.execute(
                sql(statement).bindparams(bindparam("ids", expanding=True)),
                {**ids, "last": last or first},
            )


@contextmanager
def bulk_index(session: Session, *, account_id: str) -> Iterator[BulkIndex]:
    """Index a batch of profile writes at once instead of row by row in the triggers.

    The marker row tells the search triggers to stand aside; it lives only in
    this transaction, so every other writer keeps its triggers. Leaving the
    block by an exception indexes nothing: the transaction rolls back anyway.
    """
    session.execute(insert(profile_search_bulk).values(active=True))
    index = BulkIndex(session, account_id)
    yield index
    index._finish()
    session.execute(delete(profile_search_bulk))


def count_grams(session: Session, account_id: str, changes: dict[str, grams.Changes]) -> int:
    """Apply gram count changes; the account's number."""
    name = dialect(session)
    insert_new = postgresql_insert if name == "postgresql" else sqlite_insert
    session.execute(
        insert_new(ProfileSearchAccount).values(account_id=account_id).on_conflict_do_nothing()
    )
    account_no = session.scalar(
        select(ProfileSearchAccount.no).where(ProfileSearchAccount.account_id == account_id)
    )
    if name == "postgresql":
        # The triggers' lock: one writer of an account's counts at a time.
        session.execute(select(func.pg_advisory_xact_lock(LOCK_NAMESPACE, account_no)))
    widened, lowered = [], []
    for type_, change in changes.items():
        for gram, n in change.n.items():
            if gram in change.lo:
                widened.append((gram, type_, n, change.lo[gram], change.hi[gram]))
            elif n:
                lowered.append({"g": gram, "t": type_, "n": n})
    g = ProfileSearchGram.__table__.c
    if widened and name == "postgresql":
        # One statement over arrays: given as many parameter sets, psycopg sends a
        # statement per row (16,000 a batch).
        columns = ("gram", "type", "n", "lo", "hi")
        kinds = (Text, Text, Integer, Text, Text)
        values = zip(*widened, strict=True)
        arrays = (
            func.unnest(
                *(
                    bindparam(name, list(column), type_=ARRAY(kind))
                    for name, kind, column in zip(columns, kinds, values, strict=True)
                )
            )
            .table_valued(*columns)
            .render_derived()
        )
        statement = postgresql_insert(ProfileSearchGram.__table__).from_select(
            ["account_no", *columns],
            select(literal(account_no), *(arrays.c[name] for name in columns)),
        )
        session.execute(
            statement.on_conflict_do_update(
                index_elements=[g.account_no, g.gram, g.type],
                set_={
                    "n": g.n + statement.excluded.n,
                    "lo": func.least(g.lo, statement.excluded.lo),
                    "hi": func.greatest(g.hi, statement.excluded.hi),
                },
            )
        )
    elif widened:
        # Straight to the driver: SQLAlchemy would process every one of the rows.
        session.connection().exec_driver_sql(
            "INSERT INTO profile_search_grams (account_no, gram, type, n, lo, hi) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (account_no, gram, type) DO UPDATE "
            "SET n = n + excluded.n, lo = min(lo, excluded.lo), hi = max(hi, excluded.hi)",
            [(account_no, *row) for row in widened],
        )
    if lowered:
        key = (g.account_no == account_no, g.gram == bindparam("g"), g.type == bindparam("t"))
        # The Core table: an ORM statement given many parameter sets becomes a bulk
        # operation by primary key.
        counts = ProfileSearchGram.__table__
        session.execute(update(counts).where(*key).values(n=g.n + bindparam("n")), lowered)
        session.execute(delete(counts).where(*key, g.n <= 0), lowered)
    return account_no
