"""SSO connections, their domains and linked identities, sign-ins under way, browser sessions

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 09:00:00.000000

Issue 18: people sign in through their account's OpenID Provider. A session is a row
keyed by the keyed hash of its cookie's token; deleting a profile deletes its sessions
and identity links.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

ID = sa.String(length=40).with_variant(sa.String(length=40, collation="C"), "postgresql")
KEY = sa.Text().with_variant(sa.Text(collation="C"), "postgresql")
LABELS = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sso_connections",
        sa.Column("id", ID, nullable=False),
        sa.Column("account_id", ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("labels", LABELS, nullable=False),
        sa.Column("creator_profile_id", ID, nullable=False),
        sa.Column("issuer", sa.String(length=2000), nullable=False),
        sa.Column("client_id", sa.String(length=500), nullable=False),
        sa.Column("client_secret_ciphertext", sa.Text(), nullable=False),
        sa.Column("client_secret_hint", sa.String(length=8), nullable=False),
        sa.Column("authorization_endpoint", sa.String(length=2000), nullable=False),
        sa.Column("token_endpoint", sa.String(length=2000), nullable=False),
        sa.Column("jwks_uri", sa.String(length=2000), nullable=False),
        sa.Column("allowed_email_domains", sa.JSON(), nullable=False),
        sa.Column("role_claim", sa.String(length=200), nullable=False),
        sa.Column("admin_values", sa.JSON(), nullable=False),
        sa.Column("create_profiles", sa.Boolean(), nullable=False),
        sa.Column("accept_bearer_tokens", sa.Boolean(), nullable=False),
        sa.Column("audience", sa.String(length=500), nullable=False),
        sa.Column("bearer_key", KEY, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_sso_connections_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sso_connections")),
        sa.UniqueConstraint("bearer_key", name=op.f("uq_sso_connections_bearer_key")),
    )
    op.create_index(
        op.f("ix_sso_connections_account_id_id"), "sso_connections", ["account_id", "id"]
    )
    op.create_index(op.f("ix_sso_connections_issuer"), "sso_connections", ["issuer"])

    op.create_table(
        "sso_domains",
        sa.Column("domain", KEY, nullable=False),
        sa.Column("connection_id", ID, nullable=False),
        sa.Column("account_id", ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["sso_connections.id"],
            name=op.f("fk_sso_domains_connection_id_sso_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("domain", name=op.f("pk_sso_domains")),
    )
    op.create_index(op.f("ix_sso_domains_connection_id"), "sso_domains", ["connection_id"])

    op.create_table(
        "sso_identities",
        sa.Column("connection_id", ID, nullable=False),
        sa.Column("subject", KEY, nullable=False),
        sa.Column("account_id", ID, nullable=False),
        sa.Column("profile_id", ID, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["sso_connections.id"],
            name=op.f("fk_sso_identities_connection_id_sso_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_sso_identities_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("connection_id", "subject", name=op.f("pk_sso_identities")),
    )
    op.create_index(op.f("ix_sso_identities_profile_id"), "sso_identities", ["profile_id"])

    op.create_table(
        "sso_logins",
        sa.Column("state_hash", sa.String(length=64), nullable=False),
        sa.Column("connection_id", ID, nullable=False),
        sa.Column("nonce", sa.String(length=100), nullable=False),
        sa.Column("code_verifier", sa.String(length=128), nullable=False),
        sa.Column("redirect_uri", sa.String(length=2000), nullable=False),
        sa.Column("return_to", sa.String(length=2000), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["sso_connections.id"],
            name=op.f("fk_sso_logins_connection_id_sso_connections"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("state_hash", name=op.f("pk_sso_logins")),
    )

    op.create_table(
        "browser_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("account_id", ID, nullable=False),
        sa.Column("profile_id", ID, nullable=False),
        sa.Column("connection_id", ID, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_browser_sessions_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_browser_sessions_profile_id_profiles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_browser_sessions")),
    )
    op.create_index(op.f("ix_browser_sessions_profile_id"), "browser_sessions", ["profile_id"])


def downgrade() -> None:
    op.drop_table("browser_sessions")
    op.drop_table("sso_logins")
    op.drop_table("sso_identities")
    op.drop_table("sso_domains")
    op.drop_table("sso_connections")
