"""gram counts per label, for large accounts

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 20:40:00.000000

`profile_search_label_grams` counts, per account, label (`key=value`) and gram
(as in profile_search_grams), the profiles with that label whose search text
contains the gram. A search with a short needle and one label then knows its
total without counting candidates: at a million profiles, `son` with a team
label was 11,896 candidates to visit.

Small accounts would pay more for these counts than they save (an account of
2,000 profiles has some 100,000 label grams), so they are kept only for
accounts marked `label_grams`: the importer marks an account when an import
takes it past profiles.importer.LABEL_GRAMS_FROM profiles, and counts the
profiles it already has. From then on the triggers here keep the counts in the
transaction of every write, and stand aside for the importer's batches as
those of 0003 do.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

LOCK_NAMESPACE = 0x53524348


def _key_type() -> sa.types.TypeEngine:
    return sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def upgrade() -> None:
    op.add_column(
        "profile_search_accounts",
        sa.Column("label_grams", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.create_table(
        "profile_search_label_grams",
        sa.Column("account_no", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("label", _key_type(), nullable=False),
        sa.Column("gram", _key_type(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "account_no", "label", "gram", name=op.f("pk_profile_search_label_grams")
        ),
        sqlite_with_rowid=False,
        postgresql_with={"fillfactor": 70},
    )
    if op.get_bind().dialect.name == "postgresql":
        _upgrade_postgresql()
    else:
        _upgrade_sqlite()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for event in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER profile_search_label_grams_{event} ON profiles")
        op.execute("DROP FUNCTION profile_search_label_grams_maintain()")
    else:
        for event in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER profile_search_labels_{event}")
    op.drop_table("profile_search_label_grams")
    # Not batch mode: on SQLite it would copy and rename the table, which the triggers
    # of 0003 name. SQLite drops a column itself since 3.35.
    op.execute("ALTER TABLE profile_search_accounts DROP COLUMN label_grams")


def _upgrade_postgresql() -> None:
    op.execute(
        f"""
        CREATE FUNCTION profile_search_label_grams_maintain() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
            old_no integer;
            new_no integer;
        BEGIN
            IF EXISTS (SELECT FROM profile_search_bulk) THEN
                RETURN NULL;
            END IF;
            IF TG_OP <> 'INSERT' AND OLD.labels <> '{{}}'::jsonb THEN
                SELECT no INTO old_no FROM profile_search_accounts
                WHERE account_id = OLD.account_id AND label_grams;
            END IF;
            IF old_no IS NOT NULL THEN
                PERFORM pg_advisory_xact_lock({LOCK_NAMESPACE}, old_no);
                UPDATE profile_search_label_grams AS g SET n = g.n - 1
                FROM jsonb_each_text(OLD.labels) AS l,
                     profile_search_grams_of(OLD.search_text) AS x(gram)
                WHERE g.account_no = old_no AND g.label = l.key || '=' || l.value
                  AND g.gram = x.gram;
                DELETE FROM profile_search_label_grams AS g
                USING jsonb_each_text(OLD.labels) AS l,
                      profile_search_grams_of(OLD.search_text) AS x(gram)
                WHERE g.account_no = old_no AND g.label = l.key || '=' || l.value
                  AND g.gram = x.gram AND g.n <= 0;
            END IF;
            IF TG_OP <> 'DELETE' AND NEW.labels <> '{{}}'::jsonb THEN
                SELECT no INTO new_no FROM profile_search_accounts
                WHERE account_id = NEW.account_id AND label_grams;
            END IF;
            IF new_no IS NOT NULL THEN
                PERFORM pg_advisory_xact_lock({LOCK_NAMESPACE}, new_no);
                INSERT INTO profile_search_label_grams AS g (account_no, label, gram, n)
                SELECT new_no, l.key || '=' || l.value, x.gram, 1
                FROM jsonb_each_text(NEW.labels) AS l,
                     profile_search_grams_of(NEW.search_text) AS x(gram)
                ORDER BY 2, 3
                ON CONFLICT (account_no, label, gram) DO UPDATE SET n = g.n + 1;
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    for event in ("INSERT", "DELETE"):
        op.execute(
            f"CREATE TRIGGER profile_search_label_grams_{event.lower()} AFTER {event} "
            "ON profiles FOR EACH ROW EXECUTE FUNCTION profile_search_label_grams_maintain()"
        )
    op.execute(
        "CREATE TRIGGER profile_search_label_grams_update "
        "AFTER UPDATE OF account_id, labels, search_text ON profiles FOR EACH ROW "
        "WHEN (OLD.account_id IS DISTINCT FROM NEW.account_id"
        " OR OLD.labels IS DISTINCT FROM NEW.labels"
        " OR OLD.search_text IS DISTINCT FROM NEW.search_text) "
        "EXECUTE FUNCTION profile_search_label_grams_maintain()"
    )


def _grams(text: str) -> str:
    """The distinct grams of a text expression (as in 0003)."""
    piece = f"substr({text}, p.i, p.k)"
    return (
        f"SELECT DISTINCT {piece} AS gram FROM profile_search_positions AS p "
        f"WHERE p.i <= length({text}) - p.k + 1 AND instr({piece}, char(10)) = 0"
    )


def _marked_no(row: str) -> str:
    """The account's number if its label grams are counted, else NULL."""
    return (
        "(SELECT no FROM profile_search_accounts "
        f"WHERE account_id = {row}.account_id AND label_grams)"
    )


def _labels(row: str) -> str:
    return f"SELECT j.key || '=' || j.value AS label FROM json_each({row}.labels) AS j"


def _count_in(row: str) -> str:
    return f"""
        INSERT INTO profile_search_label_grams (account_no, label, gram, n)
        SELECT a.no, l.label, g.gram, 1
        FROM profile_search_accounts AS a, ({_labels(row)}) AS l,
             ({_grams(row + ".search_text")}) AS g
        WHERE a.account_id = {row}.account_id AND a.label_grams
        ON CONFLICT (account_no, label, gram) DO UPDATE SET n = n + 1;
    """


def _count_out(row: str) -> str:
    where = (
        f"account_no = {_marked_no(row)} AND label IN ({_labels(row)}) "
        f"AND gram IN ({_grams(row + '.search_text')})"
    )
    return f"""
        UPDATE profile_search_label_grams SET n = n - 1 WHERE {where};
        DELETE FROM profile_search_label_grams WHERE {where} AND n <= 0;
    """


def _upgrade_sqlite() -> None:
    not_bulk = "NOT EXISTS (SELECT 1 FROM profile_search_bulk)"
    op.execute(
        f"""
        CREATE TRIGGER profile_search_labels_insert AFTER INSERT ON profiles
        WHEN {not_bulk} AND NEW.labels <> '{{}}' BEGIN
            {_count_in("NEW")}
        END
        """
    )
    op.execute(
        f"""
        CREATE TRIGGER profile_search_labels_delete AFTER DELETE ON profiles
        WHEN {not_bulk} AND OLD.labels <> '{{}}' BEGIN
            {_count_out("OLD")}
        END
        """
    )
    op.execute(
        f"""
        CREATE TRIGGER profile_search_labels_update
        AFTER UPDATE OF account_id, labels, search_text ON profiles
        WHEN {not_bulk} AND (OLD.account_id IS NOT NEW.account_id
            OR OLD.labels IS NOT NEW.labels OR OLD.search_text IS NOT NEW.search_text)
        BEGIN
            {_count_out("OLD")}
            {_count_in("NEW")}
        END
        """
    )
