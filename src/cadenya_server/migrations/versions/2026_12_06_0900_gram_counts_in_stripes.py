"""gram counts in stripes: writers of one account no longer queue (PostgreSQL)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 09:00:00.000000

Every profile write updates about a hundred gram count rows, and two writers
of one account touch many of the same rows ("", "a", "e", ...). Until now the
triggers took one advisory lock per account so that they could not deadlock,
which made every writer of the account (API calls and import batches alike)
wait for the one before to commit.

Now each account's counts are split into STRIPES rows per gram (a `stripe`
column in the primary key of profile_search_grams and
profile_search_label_grams): a count is the sum of its stripes. A writer takes
the first stripe whose advisory lock is free (profile_search_stripe, starting
from one its backend prefers), keeps it to the end of its transaction, and
writes only that stripe's rows, so up to STRIPES writers of one account run at
once, and none ever waits for a row another one holds (no deadlocks). A stripe
may count below zero (a profile counted in one stripe, removed through
another), and rows that reach zero stay: their bounds may be the only ones
that cover a profile counted there, and the sums stay exact.

SQLite has one writer at a time anyway: nothing changes there.
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

STRIPES = 8
# The first key of the advisory locks (migration 0003); the second is no * STRIPES + stripe.
LOCK_NAMESPACE = 0x53524348
# (table, its key without the stripe)
TABLES = (
    ("profile_search_grams", "account_no, gram, type"),
    ("profile_search_label_grams", "account_no, label, gram"),
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, key in TABLES:
        op.execute(f"ALTER TABLE {table} ADD COLUMN stripe smallint NOT NULL DEFAULT 0")
        op.execute(
            f"ALTER TABLE {table} DROP CONSTRAINT pk_{table}, "
            f"ADD CONSTRAINT pk_{table} PRIMARY KEY ({key}, stripe)"
        )
    op.execute(
        f"""
        CREATE FUNCTION profile_search_stripe(account integer) RETURNS integer
        LANGUAGE plpgsql AS $$
        DECLARE
            held text := current_setting('cadenya.search_stripe', true);
            first integer := pg_backend_pid() % {STRIPES};
            stripe integer;
        BEGIN
            IF held LIKE account || ':%' THEN
                RETURN split_part(held, ':', 2)::integer;
            END IF;
            FOR k IN 0..{STRIPES - 1} LOOP
                stripe := (first + k) % {STRIPES};
                IF pg_try_advisory_xact_lock({LOCK_NAMESPACE}, account * {STRIPES} + stripe) THEN
                    PERFORM set_config('cadenya.search_stripe', account || ':' || stripe, true);
                    RETURN stripe;
                END IF;
            END LOOP;
            -- Every stripe is taken: queue for the preferred one.
            PERFORM pg_advisory_xact_lock({LOCK_NAMESPACE}, account * {STRIPES} + first);
            PERFORM set_config('cadenya.search_stripe', account || ':' || first, true);
            RETURN first;
        END
        $$
        """
    )
    _maintain_functions(striped=True)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _maintain_functions(striped=False)
    op.execute("DROP FUNCTION profile_search_stripe(integer)")
    for table, key in TABLES:
        columns = [name.strip() for name in key.split(",")]
        extra = ", min(lo) AS lo, max(hi) AS hi" if table == "profile_search_grams" else ""
        extra_columns = ", lo, hi" if table == "profile_search_grams" else ""
        # Each count folded into stripe 0, the zeros dropped.
        op.execute(
            f"CREATE TEMPORARY TABLE folded AS SELECT {key}, sum(n)::integer AS n{extra} "
            f"FROM {table} GROUP BY {key}"
        )
        op.execute(f"DELETE FROM {table}")
        op.execute(
            f"INSERT INTO {table} ({key}, n{extra_columns}) "
            f"SELECT {', '.join(columns)}, n{extra_columns} FROM folded WHERE n > 0"
        )
        op.execute("DROP TABLE folded")
        op.execute(
            f"ALTER TABLE {table} DROP CONSTRAINT pk_{table}, "
            f"ADD CONSTRAINT pk_{table} PRIMARY KEY ({key})"
        )
        op.execute(f"ALTER TABLE {table} DROP COLUMN stripe")


def _maintain_functions(*, striped: bool) -> None:
    """The trigger functions of migrations 0003 and 0005: striped, or as they were (one
    lock per account, rows deleted at zero)."""
    grams_key = "account_no, gram, type" + (", stripe" if striped else "")
    label_key = "account_no, label, gram" + (", stripe" if striped else "")

    def take(no: str) -> str:
        if striped:
            return f"my_stripe := profile_search_stripe({no});"
        return f"PERFORM pg_advisory_xact_lock({LOCK_NAMESPACE}, {no});"

    stripe_column = ", stripe" if striped else ""
    stripe_value = ", my_stripe" if striped else ""

    def drop_zeros(table: str, where: str) -> str:
        return "" if striped else f"DELETE FROM {table} AS g WHERE {where} AND g.n <= 0;"

    drop_old_grams = drop_zeros(
        "profile_search_grams",
        "g.account_no = old_no AND g.type = OLD.type AND g.gram IN "
        "(SELECT profile_search_grams_of(OLD.search_text))",
    )
    drop_old_labels = drop_zeros(
        "profile_search_label_grams",
        "g.account_no = old_no AND (g.label, g.gram) IN "
        "(SELECT l.key || '=' || l.value, x.gram FROM jsonb_each_text(OLD.labels) "
        "AS l, profile_search_grams_of(OLD.search_text) AS x(gram))",
    )

    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION profile_search_grams_maintain() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
            old_no integer;
            new_no integer;
            my_stripe integer;
        BEGIN
            IF EXISTS (SELECT FROM profile_search_bulk) THEN
                RETURN NULL;
            END IF;
            IF TG_OP <> 'INSERT' THEN
                SELECT no INTO old_no FROM profile_search_accounts
                WHERE account_id = OLD.account_id;
                {take("old_no")}
                -- Upserted, not updated: this stripe may not hold the gram yet. The
                -- name key widens the bounds, which is always safe.
                INSERT INTO profile_search_grams AS g
                    (account_no, gram, type{stripe_column}, n, lo, hi)
                SELECT old_no, gram, OLD.type{stripe_value}, -1, OLD.name_key, OLD.name_key
                FROM profile_search_grams_of(OLD.search_text) AS gram
                ORDER BY gram
                ON CONFLICT ({grams_key}) DO UPDATE SET n = g.n - 1;
                {drop_old_grams}
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
                {take("new_no")}
                INSERT INTO profile_search_grams AS g
                    (account_no, gram, type{stripe_column}, n, lo, hi)
                SELECT new_no, gram, NEW.type{stripe_value}, 1, NEW.name_key, NEW.name_key
                FROM profile_search_grams_of(NEW.search_text) AS gram
                ORDER BY gram
                ON CONFLICT ({grams_key}) DO UPDATE
                SET n = g.n + 1, lo = least(g.lo, excluded.lo), hi = greatest(g.hi, excluded.hi);
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        f"""
        CREATE OR REPLACE FUNCTION profile_search_label_grams_maintain() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
            old_no integer;
            new_no integer;
            my_stripe integer;
        BEGIN
            IF EXISTS (SELECT FROM profile_search_bulk) THEN
                RETURN NULL;
            END IF;
            IF TG_OP <> 'INSERT' AND OLD.labels <> '{{}}'::jsonb THEN
                SELECT no INTO old_no FROM profile_search_accounts
                WHERE account_id = OLD.account_id AND label_grams;
            END IF;
            IF old_no IS NOT NULL THEN
                {take("old_no")}
                INSERT INTO profile_search_label_grams AS g
                    (account_no, label, gram{stripe_column}, n)
                SELECT old_no, l.key || '=' || l.value, x.gram{stripe_value}, -1
                FROM jsonb_each_text(OLD.labels) AS l,
                     profile_search_grams_of(OLD.search_text) AS x(gram)
                ORDER BY 2, 3
                ON CONFLICT ({label_key}) DO UPDATE SET n = g.n - 1;
                {drop_old_labels}
            END IF;
            IF TG_OP <> 'DELETE' AND NEW.labels <> '{{}}'::jsonb THEN
                SELECT no INTO new_no FROM profile_search_accounts
                WHERE account_id = NEW.account_id AND label_grams;
            END IF;
            IF new_no IS NOT NULL THEN
                {take("new_no")}
                INSERT INTO profile_search_label_grams AS g
                    (account_no, label, gram{stripe_column}, n)
                SELECT new_no, l.key || '=' || l.value, x.gram{stripe_value}, 1
                FROM jsonb_each_text(NEW.labels) AS l,
                     profile_search_grams_of(NEW.search_text) AS x(gram)
                ORDER BY 2, 3
                ON CONFLICT ({label_key}) DO UPDATE SET n = g.n + 1;
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
