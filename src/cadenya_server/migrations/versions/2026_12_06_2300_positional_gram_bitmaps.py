"""positional gram bitmaps: exact totals of long needles (issue #17)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 23:00:00.000000

A needle longer than the gram counts' grams had only a bound from them, and its total
was counted match by match: a common surname or a mail provider's name, in a sixth of
a large account, took as long as the naive scan. Accounts that keep bitmaps
(`profile_search_accounts.bitmaps`, large ones: profiles.search.bitmaps tells how)
have:

- profile_search_bitmaps: a compressed bitmap per gram (the places it starts in the
  profiles' search texts), type and label (the documents that have it), per chunk of
  documents: the base; a new `version` at every write tells servers' caches apart;
- profile_search_dirt: one row per profile write since the base was last rewritten,
  with the profile's state before it (none for a new profile), written by the triggers
  below unless the writer is the bulk importer, which rewrites the base itself;
- profile_search_bitmap_state: the row whoever rewrites the account's base locks.

Documents are numbered per account: SQLite has numbered them since migration 0003
(profile_search_docs); on PostgreSQL `profiles.search_doc`, from a sequence per kept
account, which the trigger below sets after taking a stripe of the account's counts
(migration 0009) so that it cannot miss an account that starts keeping bitmaps.
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# FTS5 document ids of an account start at its number << DOC_BITS (migration 0003).
DOC_BITS = 36
NOT_BULK_POSTGRESQL = "current_setting('cadenya.search_bulk', true) IS DISTINCT FROM 'on'"
NOT_BULK_SQLITE = "NOT EXISTS (SELECT 1 FROM profile_search_bulk)"


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    false = "false" if postgresql else "0"
    op.execute(
        f"ALTER TABLE profile_search_accounts ADD COLUMN bitmaps BOOLEAN NOT NULL DEFAULT {false}"
    )
    op.execute("CREATE TABLE profile_search_bitmap_state (account_no INTEGER PRIMARY KEY)")
    key = 'text COLLATE "C"' if postgresql else "TEXT"
    blob = "bytea" if postgresql else "BLOB"
    op.execute(
        f"CREATE TABLE profile_search_bitmaps (account_no INTEGER NOT NULL, key {key} NOT NULL, "
        f"chunk INTEGER NOT NULL, bits {blob} NOT NULL, version BIGINT NOT NULL, "
        "PRIMARY KEY (account_no, key, chunk))"
    )
    serial = "bigserial" if postgresql else "INTEGER"
    labels = "jsonb" if postgresql else "TEXT"
    op.execute(
        f"CREATE TABLE profile_search_dirt (seq {serial} PRIMARY KEY, account_no INTEGER NOT NULL, "
        "profile_id VARCHAR(40) NOT NULL, doc INTEGER, text TEXT, type VARCHAR(16), "
        f"labels {labels})"
    )
    op.execute("CREATE INDEX ix_profile_search_dirt_account ON profile_search_dirt (account_no)")
    if postgresql:
        _upgrade_postgresql()
    else:
        _upgrade_sqlite()


def _upgrade_postgresql() -> None:
    # Roaring bitmaps do not compress: no pglz attempt on every write.
    op.execute("ALTER TABLE profile_search_bitmaps ALTER COLUMN bits SET STORAGE EXTERNAL")
    op.execute("ALTER TABLE profiles ADD COLUMN search_doc integer")
    op.execute(
        "CREATE INDEX ix_profiles_search_doc ON profiles (account_id, search_doc) "
        "WHERE search_doc IS NOT NULL"
    )
    op.execute(
        """
        CREATE FUNCTION profile_search_doc_number() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
            account integer;
            keeps boolean;
        BEGIN
            SELECT no INTO account FROM profile_search_accounts
            WHERE account_id = NEW.account_id;
            IF account IS NULL THEN
                RETURN NEW;
            END IF;
            -- Read after taking a stripe: bitmaps.keep holds them all while it starts.
            PERFORM profile_search_stripe(account);
            SELECT bitmaps INTO keeps FROM profile_search_accounts WHERE no = account;
            IF keeps THEN
                NEW.search_doc := nextval('profile_search_doc_' || account);
            END IF;
            RETURN NEW;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER profile_search_doc BEFORE INSERT ON profiles FOR EACH ROW "
        f"WHEN (NEW.search_doc IS NULL AND {NOT_BULK_POSTGRESQL}) "
        "EXECUTE FUNCTION profile_search_doc_number()"
    )
    op.execute(
        """
        CREATE FUNCTION profile_search_dirt_write() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                INSERT INTO profile_search_dirt (account_no, profile_id)
                SELECT no, NEW.id FROM profile_search_accounts WHERE account_id = NEW.account_id;
            ELSE
                INSERT INTO profile_search_dirt (account_no, profile_id, doc, text, type, labels)
                SELECT no, OLD.id, OLD.search_doc, OLD.search_text, OLD.type, OLD.labels
                FROM profile_search_accounts WHERE account_id = OLD.account_id;
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    changed = (
        "OLD.search_text IS DISTINCT FROM NEW.search_text OR OLD.type IS DISTINCT FROM NEW.type "
        "OR OLD.labels IS DISTINCT FROM NEW.labels"
    )
    for name, event, row, condition in (
        ("insert", "INSERT", "NEW", None),
        ("update", "UPDATE OF search_text, type, labels", "OLD", changed),
        ("delete", "DELETE", "OLD", None),
    ):
        conditions = [f"{row}.search_doc IS NOT NULL", NOT_BULK_POSTGRESQL]
        if condition:
            conditions.append(f"({condition})")
        op.execute(
            f"CREATE TRIGGER profile_search_dirt_{name} AFTER {event} ON profiles FOR EACH ROW "
            f"WHEN ({' AND '.join(conditions)}) EXECUTE FUNCTION profile_search_dirt_write()"
        )


def _upgrade_sqlite() -> None:
    def kept(row: str) -> str:
        return (
            f"{NOT_BULK_SQLITE} AND (SELECT bitmaps FROM profile_search_accounts "
            f"WHERE account_id = {row}.account_id)"
        )

    op.execute(
        f"""
        CREATE TRIGGER profile_search_dirt_insert AFTER INSERT ON profiles WHEN {kept("NEW")}
        BEGIN
            INSERT INTO profile_search_dirt (account_no, profile_id)
            SELECT no, NEW.id FROM profile_search_accounts WHERE account_id = NEW.account_id;
        END
        """
    )
    # Before: the document is still numbered (migration 0003's triggers run after).
    old_state = f"""
        INSERT INTO profile_search_dirt (account_no, profile_id, doc, text, type, labels)
        SELECT a.no, OLD.id, d.docid - (a.no << {DOC_BITS}), OLD.search_text, OLD.type, OLD.labels
        FROM profile_search_accounts AS a JOIN profile_search_docs AS d ON d.profile_id = OLD.id
        WHERE a.account_id = OLD.account_id;
    """
    op.execute(
        f"""
        CREATE TRIGGER profile_search_dirt_update
        BEFORE UPDATE OF search_text, type, labels ON profiles
        WHEN {kept("OLD")} AND (OLD.search_text IS NOT NEW.search_text
            OR OLD.type IS NOT NEW.type OR OLD.labels IS NOT NEW.labels)
        BEGIN {old_state} END
        """
    )
    op.execute(
        f"""
        CREATE TRIGGER profile_search_dirt_delete BEFORE DELETE ON profiles WHEN {kept("OLD")}
        BEGIN {old_state} END
        """
    )


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name in ("insert", "update", "delete"):
        op.execute(
            f"DROP TRIGGER profile_search_dirt_{name}" + (" ON profiles" if postgresql else "")
        )
    if postgresql:
        op.execute("DROP FUNCTION profile_search_dirt_write()")
        op.execute("DROP TRIGGER profile_search_doc ON profiles")
        op.execute("DROP FUNCTION profile_search_doc_number()")
        numbers = op.get_bind().exec_driver_sql(
            "SELECT sequencename FROM pg_sequences "
            "WHERE sequencename LIKE 'profile\\_search\\_doc\\_%%'"
        )
        for (sequence,) in numbers.all():
            op.execute(f"DROP SEQUENCE {sequence}")
        op.execute("DROP INDEX ix_profiles_search_doc")
        op.execute("ALTER TABLE profiles DROP COLUMN search_doc")
    for table in ("profile_search_dirt", "profile_search_bitmaps", "profile_search_bitmap_state"):
        op.execute(f"DROP TABLE {table}")
    op.execute("ALTER TABLE profile_search_accounts DROP COLUMN bitmaps")
