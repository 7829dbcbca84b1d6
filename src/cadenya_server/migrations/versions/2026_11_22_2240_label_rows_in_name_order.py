"""label rows in name order

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 22:40:00.000000

A search with a label walked the whole account in name order and probed
profile_labels for every row that held the needle: `son` with team=core read
some 5,000 profiles for a page of fifty. Each label row now carries its
profile's name_key and search_text, and the rows of a label are kept in the
contract's order with the text to test, so the same page reads the label's
~850 entries and nothing else:
- on PostgreSQL, an index (account_id, key, value, name_key, profile_id)
  INCLUDE (search_text), which replaces (account_id, key, value, profile_id);
- on SQLite, the table itself, rebuilt WITHOUT ROWID with that primary key and
  search_text beside it, and (profile_id, key), the old primary key, unique.
  A covering index beside a rowid table would hold every row twice (270 MB at
  a million profiles).

Label rows are written with their profile's text (profiles.repository and the
importer); a trigger copies a profile's new name_key and search_text to its
label rows in the transaction that changes them.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

OLD_INDEX = "ix_profile_labels_account_id_key_value_profile_id"
PG_INDEX = "ix_profile_labels_account_id_key_value_name_key_profile_id"
SQLITE_INDEX = "ix_profile_labels_profile_id_key"
WALK_ORDER = ["account_id", "key", "value", "name_key", "profile_id"]
FOLLOW = (
    "UPDATE profile_labels SET name_key = NEW.name_key, search_text = NEW.search_text "
    "WHERE profile_id = NEW.id;"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        _upgrade_postgresql()
    else:
        _upgrade_sqlite()


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER profile_labels_follow_text ON profiles")
        op.execute("DROP FUNCTION profile_labels_follow_text()")
        op.drop_index(PG_INDEX, table_name="profile_labels")
        op.create_index(OLD_INDEX, "profile_labels", ["account_id", "key", "value", "profile_id"])
        op.drop_column("profile_labels", "search_text")
        op.drop_column("profile_labels", "name_key")
    else:
        op.execute("DROP TRIGGER profile_labels_follow_text")
        _rebuild_sqlite(
            [
                sa.Column("profile_id", sa.String(40), nullable=False),
                sa.Column("key", sa.String(317), nullable=False),
                sa.Column("account_id", sa.String(40), nullable=False),
                sa.Column("value", sa.String(63), nullable=False),
            ],
            primary_key=["profile_id", "key"],
            with_rowid=True,
            copied="profile_id, key, account_id, value FROM profile_labels",
        )
        op.create_index(OLD_INDEX, "profile_labels", ["account_id", "key", "value", "profile_id"])


def _upgrade_postgresql() -> None:
    key_type = sa.Text(collation="C")
    for name in ("name_key", "search_text"):
        # The default fills the rows there are, for the backfill to overwrite.
        op.add_column(
            "profile_labels", sa.Column(name, key_type, server_default="", nullable=False)
        )
    op.execute(
        "UPDATE profile_labels SET name_key = p.name_key, search_text = p.search_text "
        "FROM profiles AS p WHERE p.id = profile_labels.profile_id"
    )
    for name in ("name_key", "search_text"):
        op.alter_column("profile_labels", name, server_default=None)
    op.drop_index(OLD_INDEX, table_name="profile_labels")
    op.create_index(PG_INDEX, "profile_labels", WALK_ORDER, postgresql_include=["search_text"])
    op.execute(
        f"""
        CREATE FUNCTION profile_labels_follow_text() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            {FOLLOW}
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER profile_labels_follow_text "
        "AFTER UPDATE OF name_key, search_text ON profiles FOR EACH ROW "
        "WHEN (OLD.name_key IS DISTINCT FROM NEW.name_key "
        "OR OLD.search_text IS DISTINCT FROM NEW.search_text) "
        "EXECUTE FUNCTION profile_labels_follow_text()"
    )


def _upgrade_sqlite() -> None:
    op.drop_index(OLD_INDEX, table_name="profile_labels")
    _rebuild_sqlite(
        [
            sa.Column("profile_id", sa.String(40), nullable=False),
            sa.Column("key", sa.String(317), nullable=False),
            sa.Column("account_id", sa.String(40), nullable=False),
            sa.Column("value", sa.String(63), nullable=False),
            sa.Column("name_key", sa.Text(), nullable=False),
            sa.Column("search_text", sa.Text(), nullable=False),
        ],
        primary_key=WALK_ORDER,
        with_rowid=False,
        copied=(
            "l.profile_id, l.key, l.account_id, l.value, p.name_key, p.search_text "
            "FROM profile_labels AS l JOIN profiles AS p ON p.id = l.profile_id"
        ),
    )
    op.create_index(SQLITE_INDEX, "profile_labels", ["profile_id", "key"], unique=True)
    op.execute(
        f"""
        CREATE TRIGGER profile_labels_follow_text
        AFTER UPDATE OF name_key, search_text ON profiles
        WHEN OLD.name_key IS NOT NEW.name_key OR OLD.search_text IS NOT NEW.search_text
        BEGIN
            {FOLLOW}
        END
        """
    )


def _rebuild_sqlite(
    columns: list[sa.Column], *, primary_key: list[str], with_rowid: bool, copied: str
) -> None:
    """profile_labels again with these columns and primary key, its rows copied over."""
    op.create_table(
        "profile_labels_new",
        *columns,
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name="fk_profile_labels_profile_id_profiles",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(*primary_key, name="pk_profile_labels"),
        sqlite_with_rowid=with_rowid,
    )
    names = ", ".join(column.name for column in columns)
    op.execute(f"INSERT INTO profile_labels_new ({names}) SELECT {copied}")
    op.drop_table("profile_labels")
    op.rename_table("profile_labels_new", "profile_labels")
