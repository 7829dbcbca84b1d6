"""profiles.deactivated_at; profiles by external id; scim_users (what SCIM keeps of a person)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 09:00:00.000000

SCIM (issue 18) deactivates a profile (`active: false`): a nullable timestamp, NULL for
an active profile. IdPs look people up by `externalId`, so profiles get an index on
it. `scim_users` keeps a SCIM User's attributes that no profile column holds, so a
provisioned person reads back as it was written, and a `userName` that is not the
profile's email.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

ID = sa.String(length=40).with_variant(sa.String(length=40, collation="C"), "postgresql")
KEY = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # Not batch mode: SQLite adds a nullable column in place, where batch mode would copy
    # `profiles` (and lose its search triggers).
    op.add_column("profiles", sa.Column("deactivated_at", TS, nullable=True))
    op.create_index(
        op.f("ix_profiles_account_id_external_id"), "profiles", ["account_id", "external_id"]
    )
    op.create_table(
        "scim_users",
        sa.Column("profile_id", ID, nullable=False),
        sa.Column("account_id", ID, nullable=False),
        # NULL: the userName is the profile's email (the usual case).
        sa.Column("user_name", sa.String(length=320), nullable=True),
        sa.Column("user_name_key", KEY, nullable=True),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_scim_users_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_scim_users_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("profile_id", name=op.f("pk_scim_users")),
    )
    op.create_index(
        op.f("ix_scim_users_account_id_user_name_key"),
        "scim_users",
        ["account_id", "user_name_key"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_scim_users_account_id_user_name_key"), table_name="scim_users")
    op.drop_table("scim_users")
    op.drop_index(op.f("ix_profiles_account_id_external_id"), table_name="profiles")
    op.drop_column("profiles", "deactivated_at")
