"""profile search index: gram counts, and trigram candidates (FTS5 / pg_trgm)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 16:00:00.000000

Both databases get `profile_search_grams`: per account, profile type and gram
(every distinct substring of up to four characters of `profiles.search_text`,
and "" for all), how many profiles contain it and the range of their name keys.

Candidates for selective searches come from a trigram index: on PostgreSQL a
pg_trgm GIN index over the profiles table; on SQLite a contentless FTS5 table
with the trigram tokenizer (case-sensitive: it indexes `search_text`, which
Python already lower-cased) and one token per type and label ("facets"), whose
rowids are numbered per account (`no << 36`) so a search reads only its own
account's part of each doclist.

Triggers keep all of it exact in the transaction of every write, unless the
writer has put a row in `profile_search_bulk`: the importer, which indexes a
whole batch at once (profiles.repository.bulk_index) instead of row by row.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

MAX_GRAM = 4
# Longest search_text: a 200-character name and a 320-character email, both
# lower-cased (which at most doubles them: "İ" becomes "i̇"), and the separator.
MAX_TEXT = 1041
# profile_search_docs numbers documents `account no << DOC_BITS` upwards.
DOC_BITS = 36
# The first key of pg_advisory_xact_lock(int, int) taken by gram count writers.
LOCK_NAMESPACE = 0x53524348


def _id_type() -> sa.types.TypeEngine:
    return sa.String(length=40).with_variant(sa.String(length=40, collation="C"), "postgresql")


def _key_type() -> sa.types.TypeEngine:
    return sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "profile_search_accounts",
        sa.Column("no", sa.Integer(), nullable=False),
        sa.Column("account_id", _id_type(), nullable=False),
        sa.PrimaryKeyConstraint("no", name=op.f("pk_profile_search_accounts")),
        sa.UniqueConstraint("account_id", name=op.f("uq_profile_search_accounts_account_id")),
    )
    op.create_table(
        "profile_search_grams",
        sa.Column("account_no", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("gram", _key_type(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("lo", _key_type(), nullable=False),
        sa.Column("hi", _key_type(), nullable=False),
        sa.PrimaryKeyConstraint("account_no", "gram", "type", name=op.f("pk_profile_search_grams")),
        sqlite_with_rowid=False,
        # Every profile write updates a hundred rows or so: room in each page lets
        # PostgreSQL update them in place (HOT) instead of bloating table and key.
        postgresql_with={"fillfactor": 70},
    )
    op.create_table("profile_search_bulk", sa.Column("active", sa.Boolean(), nullable=False))
    op.execute(
        "INSERT INTO profile_search_accounts (account_id) "
        "SELECT DISTINCT account_id FROM profiles ORDER BY account_id"
    )
    if op.get_bind().dialect.name == "postgresql":
        _upgrade_postgresql()
    else:
        _upgrade_sqlite()
    _backfill_grams()


def _grams_of(search_text: str) -> set[str]:
    """profiles.grams.of_text as of this revision."""
    found = {""}
    for part in search_text.split("\n"):
        found.update(
            part[i : i + k] for k in range(1, MAX_GRAM + 1) for i in range(len(part) - k + 1)
        )
    return found


def _backfill_grams() -> None:
    """The gram counts of the profiles already there, one account at a time, in Python.

    In SQL, a DISTINCT over every position of every profile takes hours on a
    million profiles; counting them here takes minutes.
    """
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT a.no, p.type, p.name_key, p.search_text FROM profiles AS p "
            "JOIN profile_search_accounts AS a ON a.account_id = p.account_id ORDER BY a.no"
        ).execution_options(stream_results=True)
    )
    insert = sa.text(
        "INSERT INTO profile_search_grams (account_no, gram, type, n, lo, hi) "
        "VALUES (:no, :gram, :type, :n, :lo, :hi)"
    )
    counts: dict[tuple[str, str], list] = {}
    current = None
    for no, type_, name_key, search_text in rows:
        if no != current and counts:
            bind.execute(insert, _count_rows(current, counts))
            counts = {}
        current = no
        for gram in _grams_of(search_text):
            count = counts.get((type_, gram))
            if count is None:
                counts[type_, gram] = [1, name_key, name_key]
            else:
                count[0] += 1
                count[1] = min(count[1], name_key)
                count[2] = max(count[2], name_key)
    if counts:
        bind.execute(insert, _count_rows(current, counts))


def _count_rows(no: int, counts: dict[tuple[str, str], list]) -> list[dict]:
    return [
        {"no": no, "gram": gram, "type": type_, "n": n, "lo": lo, "hi": hi}
        for (type_, gram), (n, lo, hi) in counts.items()
    ]


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for event in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER profile_search_grams_{event} ON profiles")
        op.execute("DROP FUNCTION profile_search_grams_maintain()")
        op.execute("DROP FUNCTION profile_search_grams_of(text)")
        op.execute("DROP INDEX ix_profiles_search_gin")
    else:
        for event in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER profile_search_{event}")
        op.execute("DROP VIEW profile_search_documents")
        op.execute("DROP INDEX profile_search_walk")
        for table in ("fts", "docs", "facets", "positions"):
            op.execute(f"DROP TABLE profile_search_{table}")
    op.drop_table("profile_search_bulk")
    op.drop_table("profile_search_grams")
    op.drop_table("profile_search_accounts")


# --- PostgreSQL -----------------------------------------------------------------------


def _upgrade_postgresql() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute(
        "CREATE INDEX ix_profiles_search_gin ON profiles "
        "USING gin (labels jsonb_path_ops, search_text gin_trgm_ops)"
    )
    op.execute(
        f"""
        CREATE FUNCTION profile_search_grams_of(t text) RETURNS SETOF text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
            SELECT DISTINCT substr(t, i, k)
            FROM generate_series(0, {MAX_GRAM}) AS k,
                 generate_series(1, char_length(t) - k + 1) AS i
            WHERE strpos(substr(t, i, k), E'\\n') = 0
        $$
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION profile_search_grams_maintain() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
            old_no integer;
            new_no integer;
        BEGIN
            IF EXISTS (SELECT FROM profile_search_bulk) THEN
                RETURN NULL;
            END IF;
            IF TG_OP <> 'INSERT' THEN
                SELECT no INTO old_no FROM profile_search_accounts
                WHERE account_id = OLD.account_id;
                -- One writer of an account's counts at a time: no deadlocks between
                -- transactions that touch the same grams in different orders.
                PERFORM pg_advisory_xact_lock({LOCK_NAMESPACE}, old_no);
                UPDATE profile_search_grams AS g SET n = g.n - 1
                WHERE g.account_no = old_no AND g.type = OLD.type
                  AND g.gram IN (SELECT profile_search_grams_of(OLD.search_text));
                DELETE FROM profile_search_grams AS g
                WHERE g.account_no = old_no AND g.type = OLD.type AND g.n <= 0
                  AND g.gram IN (SELECT profile_search_grams_of(OLD.search_text));
            END IF;
            IF TG_OP <> 'DELETE' THEN
                SELECT no INTO new_no FROM profile_search_accounts
                WHERE account_id = NEW.account_id;
                IF new_no IS NULL THEN
                    INSERT INTO profile_search_accounts (account_id) VALUES (NEW.account_id)
                    ON CONFLICT (account_id) DO NOTHING;
                    SELECT no INTO new_no FROM profile_search_accounts
                    WHERE account_id = NEW.account_id;
                END IF;
                PERFORM pg_advisory_xact_lock({LOCK_NAMESPACE}, new_no);
                INSERT INTO profile_search_grams AS g (account_no, gram, type, n, lo, hi)
                SELECT new_no, gram, NEW.type, 1, NEW.name_key, NEW.name_key
                FROM profile_search_grams_of(NEW.search_text) AS gram
                ORDER BY gram
                ON CONFLICT (account_no, gram, type) DO UPDATE
                SET n = g.n + 1, lo = least(g.lo, excluded.lo), hi = greatest(g.hi, excluded.hi);
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER profile_search_grams_insert AFTER INSERT ON profiles "
        "FOR EACH ROW EXECUTE FUNCTION profile_search_grams_maintain()"
    )
    op.execute(
        "CREATE TRIGGER profile_search_grams_delete AFTER DELETE ON profiles "
        "FOR EACH ROW EXECUTE FUNCTION profile_search_grams_maintain()"
    )
    op.execute(
        "CREATE TRIGGER profile_search_grams_update "
        "AFTER UPDATE OF account_id, type, name_key, search_text ON profiles FOR EACH ROW "
        "WHEN (OLD.account_id IS DISTINCT FROM NEW.account_id OR OLD.type IS DISTINCT FROM NEW.type"
        " OR OLD.name_key IS DISTINCT FROM NEW.name_key"
        " OR OLD.search_text IS DISTINCT FROM NEW.search_text) "
        "EXECUTE FUNCTION profile_search_grams_maintain()"
    )


# --- SQLite ---------------------------------------------------------------------------


def _grams(text: str) -> str:
    """The distinct grams of a text expression, as a subquery (see profiles.grams.of_text)."""
    piece = f"substr({text}, p.i, p.k)"
    return (
        f"SELECT DISTINCT {piece} AS gram FROM profile_search_positions AS p "
        f"WHERE p.i <= length({text}) - p.k + 1 AND instr({piece}, char(10)) = 0"
    )


def _facet_names(row: str) -> str:
    return (
        f"SELECT 'type:' || {row}.type UNION ALL "
        f"SELECT 'label:' || j.key || '=' || j.value FROM json_each({row}.labels) AS j"
    )


def _facets(row: str) -> str:
    """The facet tokens of a row, in a fixed order: deleting a document repeats them exactly."""
    code = "char(57344 + f.id % 6400, 57344 + f.id / 6400 % 6400, 57344 + f.id / 40960000)"
    return (
        f"(SELECT group_concat(c.code, ' ') FROM (SELECT {code} AS code "
        f"FROM profile_search_facets AS f WHERE f.facet IN ({_facet_names(row)}) "
        f"ORDER BY f.id) AS c)"
    )


def _account_no(row: str) -> str:
    return f"(SELECT no FROM profile_search_accounts WHERE account_id = {row}.account_id)"


def _guard(row: str) -> str:
    return f"""
        SELECT RAISE(ABORT, 'search_text is longer than the search index allows')
        WHERE length({row}.search_text) > {MAX_TEXT};
    """


def _count_in(row: str) -> str:
    return f"""
        INSERT INTO profile_search_grams (account_no, gram, type, n, lo, hi)
        SELECT {_account_no(row)}, g.gram, {row}.type, 1, {row}.name_key, {row}.name_key
        FROM ({_grams(row + ".search_text")}) AS g WHERE true
        ON CONFLICT (account_no, gram, type) DO UPDATE
        SET n = n + 1, lo = min(lo, excluded.lo), hi = max(hi, excluded.hi);
    """


def _count_out(row: str) -> str:
    where = (
        f"account_no = {_account_no(row)} AND type = {row}.type "
        f"AND gram IN ({_grams(row + '.search_text')})"
    )
    return f"""
        UPDATE profile_search_grams SET n = n - 1 WHERE {where};
        DELETE FROM profile_search_grams WHERE {where} AND n <= 0;
    """


def _document_out(row: str) -> str:
    return f"""
        INSERT INTO profile_search_fts (profile_search_fts, rowid, body, facets)
        SELECT 'delete', d.docid, {row}.search_text, {_facets(row)}
        FROM profile_search_docs AS d WHERE d.profile_id = {row}.id;
    """


def _document_in(row: str) -> str:
    return f"""
        INSERT OR IGNORE INTO profile_search_facets (facet) {_facet_names(row)};
        INSERT INTO profile_search_fts (rowid, body, facets)
        SELECT docid, body, facets FROM profile_search_documents WHERE profile_id = {row}.id;
    """


def _upgrade_sqlite() -> None:
    op.execute(
        "CREATE TABLE profile_search_positions (i INTEGER NOT NULL, k INTEGER NOT NULL, "
        "PRIMARY KEY (i, k)) WITHOUT ROWID"
    )
    # (1, 0) yields "", the gram every profile has.
    positions = [(1, 0)] + [(i, k) for i in range(1, MAX_TEXT + 1) for k in range(1, MAX_GRAM + 1)]
    op.get_bind().exec_driver_sql(
        "INSERT INTO profile_search_positions (i, k) VALUES (?, ?)", positions
    )
    # The document of each profile, with its name key: candidates sort without
    # reading the profiles table.
    op.execute(
        "CREATE TABLE profile_search_docs (docid INTEGER PRIMARY KEY, "
        "profile_id VARCHAR(40) NOT NULL UNIQUE, name_key TEXT NOT NULL)"
    )
    # Walks in name order filter on search_text without reading the table.
    op.execute(
        "CREATE INDEX profile_search_walk ON profiles (account_id, name_key, id, search_text)"
    )
    op.execute(
        "CREATE TABLE profile_search_facets (id INTEGER PRIMARY KEY, facet TEXT NOT NULL UNIQUE)"
    )
    # What the FTS5 table holds for a profile: the search text, and its facet tokens.
    op.execute(
        f"""
        CREATE VIEW profile_search_documents AS
        SELECT d.profile_id, d.docid, pr.search_text AS body, {_facets("pr")} AS facets
        FROM profile_search_docs AS d JOIN profiles AS pr ON pr.id = d.profile_id
        """
    )
    op.execute(
        "CREATE VIRTUAL TABLE profile_search_fts USING fts5(body, facets, "
        "tokenize = 'trigram case_sensitive 1', content = '', columnsize = 0, detail = full)"
    )
    not_bulk = "NOT EXISTS (SELECT 1 FROM profile_search_bulk)"
    op.execute(
        f"""
        CREATE TRIGGER profile_search_insert AFTER INSERT ON profiles WHEN {not_bulk} BEGIN
            {_guard("NEW")}
            INSERT OR IGNORE INTO profile_search_accounts (account_id) VALUES (NEW.account_id);
            {_count_in("NEW")}
            INSERT INTO profile_search_docs (docid, profile_id, name_key)
            SELECT coalesce((SELECT max(d.docid) FROM profile_search_docs AS d
                             WHERE d.docid BETWEEN a.no << {DOC_BITS}
                                               AND ((a.no + 1) << {DOC_BITS}) - 1),
                            a.no << {DOC_BITS}) + 1, NEW.id, NEW.name_key
            FROM profile_search_accounts AS a WHERE a.account_id = NEW.account_id;
            {_document_in("NEW")}
        END
        """
    )
    op.execute(
        f"""
        CREATE TRIGGER profile_search_delete AFTER DELETE ON profiles WHEN {not_bulk} BEGIN
            {_count_out("OLD")}
            {_document_out("OLD")}
            DELETE FROM profile_search_docs WHERE profile_id = OLD.id;
        END
        """
    )
    op.execute(
        f"""
        CREATE TRIGGER profile_search_update
        AFTER UPDATE OF account_id, type, name_key, search_text, labels ON profiles
        WHEN {not_bulk} AND (OLD.account_id IS NOT NEW.account_id OR OLD.type IS NOT NEW.type
            OR OLD.name_key IS NOT NEW.name_key OR OLD.search_text IS NOT NEW.search_text
            OR OLD.labels IS NOT NEW.labels)
        BEGIN
            {_guard("NEW")}
            {_count_out("OLD")}
            {_count_in("NEW")}
            {_document_out("OLD")}
            UPDATE profile_search_docs SET name_key = NEW.name_key WHERE profile_id = NEW.id;
            {_document_in("NEW")}
        END
        """
    )
    # Backfill what the triggers would have written for the rows already there.
    op.execute(
        "INSERT OR IGNORE INTO profile_search_facets (facet) "
        "SELECT DISTINCT 'type:' || type FROM profiles"
    )
    op.execute(
        "INSERT OR IGNORE INTO profile_search_facets (facet) "
        "SELECT DISTINCT 'label:' || j.key || '=' || j.value "
        "FROM profiles AS pr, json_each(pr.labels) AS j"
    )
    op.execute(
        f"""
        INSERT INTO profile_search_docs (docid, profile_id, name_key)
        SELECT (a.no << {DOC_BITS}) + row_number() OVER (PARTITION BY a.no ORDER BY pr.id),
               pr.id, pr.name_key
        FROM profiles AS pr JOIN profile_search_accounts AS a ON a.account_id = pr.account_id
        """
    )
    op.execute(
        "INSERT INTO profile_search_fts (rowid, body, facets) "
        "SELECT docid, body, facets FROM profile_search_documents"
    )
