"""profile walks read the index alone

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 17:30:00.000000

A search walks an account's profiles in (name_key, id) order and tests each
one's search_text. On PostgreSQL the name-order index now carries search_text
(INCLUDE), so the walk is an index-only scan instead of a heap fetch per row.
On SQLite, profile_search_walk (account_id, name_key, id, search_text) has
served every such walk since 0003, which left the plain name-order index with
nothing to do but cost space and writes: it goes.
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

NAME_ORDER = "ix_profiles_account_id_name_key_id"


def upgrade() -> None:
    op.drop_index(NAME_ORDER, table_name="profiles")
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            NAME_ORDER,
            "profiles",
            ["account_id", "name_key", "id"],
            postgresql_include=["search_text"],
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index(NAME_ORDER, table_name="profiles")
    op.create_index(NAME_ORDER, "profiles", ["account_id", "name_key", "id"])
