"""label rows in name order

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 22:40:00.000000

A search with a label walked the whole account in name order and probed
profile_labels for every row that held the needle: `son` with team=core read
some 5,000 profiles for a page of fifty. Each label row now carries its
profile's name_key and search_text, and an index lists a label's profiles in
the contract's order with the text to test (on PostgreSQL INCLUDEd, on SQLite
as the index's last column), so the same page reads the label's ~850 entries
and nothing else. It replaces the (account_id, key, value, profile_id) index,
whose lookups it serves as well.

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
SQLITE_INDEX = "ix_profile_labels_account_id_key_value_name_key_profile_id_search_text"


def _key_type() -> sa.types.TypeEngine:
    return sa.Text().with_variant(sa.Text(collation="C"), "postgresql")


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name in ("name_key", "search_text"):
        op.add_column(
            "profile_labels",
            sa.Column(name, _key_type(), server_default="", nullable=False),
        )
    op.execute(
        "UPDATE profile_labels SET name_key = p.name_key, search_text = p.search_text "
        "FROM profiles AS p WHERE p.id = profile_labels.profile_id"
    )
    op.drop_index(OLD_INDEX, table_name="profile_labels")
    order = ["account_id", "key", "value", "name_key", "profile_id"]
    if postgresql:
        op.create_index(PG_INDEX, "profile_labels", order, postgresql_include=["search_text"])
        op.execute(
            """
            CREATE FUNCTION profile_labels_follow_text() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                UPDATE profile_labels
                SET name_key = NEW.name_key, search_text = NEW.search_text
                WHERE profile_id = NEW.id;
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
    else:
        op.create_index(SQLITE_INDEX, "profile_labels", [*order, "search_text"])
        op.execute(
            """
            CREATE TRIGGER profile_labels_follow_text
            AFTER UPDATE OF name_key, search_text ON profiles
            WHEN OLD.name_key IS NOT NEW.name_key OR OLD.search_text IS NOT NEW.search_text
            BEGIN
                UPDATE profile_labels
                SET name_key = NEW.name_key, search_text = NEW.search_text
                WHERE profile_id = NEW.id;
            END
            """
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER profile_labels_follow_text ON profiles")
        op.execute("DROP FUNCTION profile_labels_follow_text()")
        op.drop_index(PG_INDEX, table_name="profile_labels")
    else:
        op.execute("DROP TRIGGER profile_labels_follow_text")
        op.drop_index(SQLITE_INDEX, table_name="profile_labels")
    op.create_index(OLD_INDEX, "profile_labels", ["account_id", "key", "value", "profile_id"])
    # Not batch mode, as in 0005: SQLite drops a column itself since 3.35.
    for name in ("search_text", "name_key"):
        op.execute(f"ALTER TABLE profile_labels DROP COLUMN {name}")
