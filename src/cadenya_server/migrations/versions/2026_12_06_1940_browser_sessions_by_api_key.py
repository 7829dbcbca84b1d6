"""browser_sessions.api_key_hash: a console session started with a pasted API key

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 19:40:00.000000

Issue 19: the console signs in with an API key pasted once and exchanged for a browser
session. The session keeps the keyed hash of the key's token (never the token), so it
acts with the key's scopes and ends as soon as the key is disabled, rotated or deleted.
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("browser_sessions") as batch:
        batch.add_column(sa.Column("api_key_hash", sa.String(length=64), nullable=True))
    # Disabling, rotating or deleting a key ends its sessions: found by this column.
    op.create_index(op.f("ix_browser_sessions_api_key_hash"), "browser_sessions", ["api_key_hash"])


def downgrade() -> None:
    op.drop_index(op.f("ix_browser_sessions_api_key_hash"), table_name="browser_sessions")
    with op.batch_alter_table("browser_sessions") as batch:
        batch.drop_column("api_key_hash")
