"""The tables. Every resource row carries its account id: tenancy is a column, not a guess."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from cadenya_server.kit.clock import now

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Ids and sort keys compare by code point on both databases, as Python does:
# PostgreSQL's default collation would order "zoë" by locale rules instead.
IdType = String(40).with_variant(String(40, collation="C"), "postgresql")
KeyText = Text().with_variant(Text(collation="C"), "postgresql")
LabelsType = JSON().with_variant(JSONB(), "postgresql")
Timestamp = DateTime(timezone=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(IdType, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    domain: Mapped[str] = mapped_column(String(253), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    billing_email: Mapped[str] = mapped_column(String(320), default="")
    external_id: Mapped[str] = mapped_column(String(200), default="")
    labels: Mapped[dict[str, str]] = mapped_column(LabelsType, default=dict)
    # The first administrator; set once that profile exists.
    creator_profile_id: Mapped[str] = mapped_column(IdType, default="")
    # When the previous webhook secret (account_secrets' "…_previous") stops signing;
    # NULL when no rotation's grace window is open.
    previous_webhook_secret_expires_at: Mapped[datetime | None] = mapped_column(
        Timestamp, nullable=True, default=None
    )
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=now)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=now, onupdate=now)


class AccountSecret(Base):
    """Values the account must be able to see again, encrypted at rest."""

    __tablename__ = "account_secrets"

    account_id: Mapped[str] = mapped_column(
        IdType, ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    ciphertext: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=now, onupdate=now)


class Profile(Base):
    __tablename__ = "profiles"
    __table_args__ = (
        # Email is unique per account, case-insensitively; NULL (no email) never collides.
        Index(None, "account_id", "email_key", unique=True),
        # The name order of the search's walks, which test search_text on every row
        # they pass: on PostgreSQL without reading the table (an index-only scan).
        # SQLite walks profile_search_walk instead (migrations 0003 and 0004).
        Index(None, "account_id", "name_key", "id", postgresql_include=["search_text"]).ddl_if(
            dialect="postgresql"
        ),
        Index(None, "account_id", "type", "name_key", "id"),
        # SCIM clients look people up by externalId.
        Index(None, "account_id", "external_id"),
        # Candidates for selective searches on PostgreSQL (SQLite has an FTS5
        # table instead; see the 0003 migration).
        Index(
            "ix_profiles_search_gin",
            "labels",
            "search_text",
            postgresql_using="gin",
            postgresql_ops={"labels": "jsonb_path_ops", "search_text": "gin_trgm_ops"},
        ).ddl_if(dialect="postgresql"),
    )

    id: Mapped[str] = mapped_column(IdType, primary_key=True)
    account_id: Mapped[str] = mapped_column(IdType, ForeignKey("accounts.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(16), default="member")
    name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(320), default="")
    email_key: Mapped[str | None] = mapped_column(KeyText, nullable=True)
    # Derived from name and email on every write (see profiles.text): the
    # order key and the haystack of the search.
    name_key: Mapped[str] = mapped_column(KeyText, default="")
    search_text: Mapped[str] = mapped_column(KeyText, default="")
    external_id: Mapped[str] = mapped_column(String(200), default="")
    labels: Mapped[dict[str, str]] = mapped_column(LabelsType, default=dict)
    creator_profile_id: Mapped[str] = mapped_column(IdType, default="")
    # Set by SCIM's `active: false`: the person can neither sign in nor call the API.
    deactivated_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=now)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=now, onupdate=now)


class ScimUser(Base):
    """What SCIM keeps of a person that no profile column holds (scim/)."""

    __tablename__ = "scim_users"
    __table_args__ = (Index(None, "account_id", "user_name_key", unique=True),)

    profile_id: Mapped[str] = mapped_column(
        IdType, ForeignKey("profiles.id", ondelete="CASCADE"), primary_key=True
    )
    account_id: Mapped[str] = mapped_column(IdType, ForeignKey("accounts.id", ondelete="CASCADE"))
    # NULL: the userName is the profile's email (the usual case).
    user_name: Mapped[str | None] = mapped_column(String(320), nullable=True)
    user_name_key: Mapped[str | None] = mapped_column(KeyText, nullable=True)
    # The User's other attributes, as SCIM JSON (never a password).
    attributes: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=now, onupdate=now)


class ProfileLabel(Base):
    """One row per label of a profile, so a label filter is an index lookup.

    Each row carries its profile's name_key and search_text (a trigger follows
    renames), and a label's rows are kept in the search's order with the text it
    tests, so a search with a label walks the label's rows instead of the whole
    account (migration 0006): on PostgreSQL through the index below; on SQLite
    the table itself is WITHOUT ROWID with (account_id, key, value, name_key,
    profile_id) as its primary key, and (profile_id, key) is a unique index.
    """

    __tablename__ = "profile_labels"
    __table_args__ = (
        Index(
            None,
            "account_id",
            "key",
            "value",
            "name_key",
            "profile_id",
            postgresql_include=["search_text"],
        ).ddl_if(dialect="postgresql"),
    )

    profile_id: Mapped[str] = mapped_column(
        IdType, ForeignKey("profiles.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(317), primary_key=True)
    account_id: Mapped[str] = mapped_column(IdType)
    value: Mapped[str] = mapped_column(String(63))
    name_key: Mapped[str] = mapped_column(KeyText)
    search_text: Mapped[str] = mapped_column(KeyText)


class ProfileSearchAccount(Base):
    """A small number per account, by which the search structures key accounts."""

    __tablename__ = "profile_search_accounts"

    no: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[str] = mapped_column(IdType, unique=True)
    # Whether profile_search_label_grams counts this account's profiles (large accounts).
    label_grams: Mapped[bool] = mapped_column(Boolean, server_default=false(), default=False)
    # Whether profile_search_bitmaps holds this account's profiles (large accounts; see
    # profiles.search.bitmaps). Its documents are numbered on PostgreSQL by
    # profiles.search_doc (migration 0013), left out of the Profile model: only
    # triggers, the importer and the bitmaps' SQL read or write it.
    bitmaps: Mapped[bool] = mapped_column(Boolean, server_default=false(), default=False)


class ProfileSearchGram(Base):
    """How many profiles of a type contain a gram (see profiles.search.grams), kept by triggers.

    `lo` and `hi` bound the name keys of those profiles: they widen as profiles
    come and never narrow as they go, so they stay bounds. On PostgreSQL the table
    also has a `stripe` in its key (migration 0009), left out here: a count is the
    sum of its rows, and the model only ever reads sums.
    """

    __tablename__ = "profile_search_grams"
    __table_args__ = {"sqlite_with_rowid": False, "postgresql_with": {"fillfactor": 70}}

    account_no: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    gram: Mapped[str] = mapped_column(KeyText, primary_key=True)
    type: Mapped[str] = mapped_column(String(16), primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
    lo: Mapped[str] = mapped_column(KeyText)
    hi: Mapped[str] = mapped_column(KeyText)


class ProfileSearchLabelGram(Base):
    """How many profiles with a label (`key=value`) contain a gram, for marked accounts."""

    __tablename__ = "profile_search_label_grams"
    __table_args__ = {"sqlite_with_rowid": False, "postgresql_with": {"fillfactor": 70}}

    account_no: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    label: Mapped[str] = mapped_column(KeyText, primary_key=True)
    gram: Mapped[str] = mapped_column(KeyText, primary_key=True)
    n: Mapped[int] = mapped_column(Integer)


# On SQLite, a row here, visible only inside the transaction that wrote it, tells the
# search triggers that the writer (the bulk importer) indexes its batch itself; on
# PostgreSQL a setting does (profiles.search.index.bulk_index).
profile_search_bulk = Table(
    "profile_search_bulk", Base.metadata, Column("active", Boolean, nullable=False)
)


class Workspace(Base):
    __tablename__ = "workspaces"
    __table_args__ = (Index(None, "account_id", "status", "id"),)

    id: Mapped[str] = mapped_column(IdType, primary_key=True)
    account_id: Mapped[str] = mapped_column(IdType, ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    external_id: Mapped[str] = mapped_column(String(200), default="")
    labels: Mapped[dict[str, str]] = mapped_column(LabelsType, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="enabled")
    creator_profile_id: Mapped[str] = mapped_column(IdType, default="")
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=now)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=now, onupdate=now)
    archived_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (Index(None, "account_id", "id"),)

    id: Mapped[str] = mapped_column(IdType, primary_key=True)
    account_id: Mapped[str] = mapped_column(IdType, ForeignKey("accounts.id", ondelete="CASCADE"))
    # Every key acts as its own profile; deleting the profile deletes the key.
    profile_id: Mapped[str] = mapped_column(
        IdType, ForeignKey("profiles.id", ondelete="CASCADE"), unique=True
    )
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    external_id: Mapped[str] = mapped_column(String(200), default="")
    labels: Mapped[dict[str, str]] = mapped_column(LabelsType, default=dict)
    # Looked up by keyed hash; the ciphertext exists only so :reveal can work.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_ciphertext: Mapped[str] = mapped_column(Text)
    token_hint: Mapped[str] = mapped_column(String(8))
    permissions: Mapped[list[str]] = mapped_column(JSON, default=list)
    all_workspaces: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    expires_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    creator_profile_id: Mapped[str] = mapped_column(IdType, default="")
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=now)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=now, onupdate=now)


class WorkspaceMember(Base):
    """The actor that links a profile to a workspace."""

    __tablename__ = "workspace_members"
    __table_args__ = (
        # One actor per profile and workspace, also under concurrent adds.
        Index(None, "workspace_id", "profile_id", unique=True),
        Index(None, "profile_id"),
    )

    id: Mapped[str] = mapped_column(IdType, primary_key=True)
    account_id: Mapped[str] = mapped_column(IdType, ForeignKey("accounts.id", ondelete="CASCADE"))
    workspace_id: Mapped[str] = mapped_column(
        IdType, ForeignKey("workspaces.id", ondelete="CASCADE")
    )
    profile_id: Mapped[str] = mapped_column(IdType, ForeignKey("profiles.id", ondelete="CASCADE"))
    creator_profile_id: Mapped[str] = mapped_column(IdType, default="")
    added_at: Mapped[datetime] = mapped_column(Timestamp, default=now)


class ApiKeyWorkspace(Base):
    """A workspace an API key is assigned to (when it does not reach all of them)."""

    __tablename__ = "api_key_workspaces"
    __table_args__ = (Index(None, "workspace_id"),)

    api_key_id: Mapped[str] = mapped_column(
        IdType, ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True
    )
    workspace_id: Mapped[str] = mapped_column(
        IdType, ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    account_id: Mapped[str] = mapped_column(IdType)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=now)


class TrustedEndpoint(Base):
    __tablename__ = "trusted_endpoints"
    __table_args__ = (Index(None, "account_id", "host", unique=True),)

    id: Mapped[str] = mapped_column(IdType, primary_key=True)
    account_id: Mapped[str] = mapped_column(IdType, ForeignKey("accounts.id", ondelete="CASCADE"))
    # Normalised: lower-case, IDNA A-label, no trailing dot, optional :port.
    host: Mapped[str] = mapped_column(String(300))
    name: Mapped[str] = mapped_column(String(200), default="")
    external_id: Mapped[str] = mapped_column(String(200), default="")
    labels: Mapped[dict[str, str]] = mapped_column(LabelsType, default=dict)
    creator_profile_id: Mapped[str] = mapped_column(IdType, default="")
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=now)


class AuditEvent(Base):
    """One change on the account plane, written in the transaction that made it."""

    __tablename__ = "audit_events"
    __table_args__ = (Index(None, "account_id", "id"),)

    id: Mapped[str] = mapped_column(IdType, primary_key=True)
    account_id: Mapped[str] = mapped_column(IdType, ForeignKey("accounts.id", ondelete="CASCADE"))
    actor_profile_id: Mapped[str] = mapped_column(IdType, default="")
    api_key_id: Mapped[str] = mapped_column(IdType, default="")
    action: Mapped[str] = mapped_column(String(64))
    resource_id: Mapped[str] = mapped_column(IdType, default="")
    request_id: Mapped[str] = mapped_column(String(128), default="")
    details: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=now)


class WebhookEndpoint(Base):
    """Where the account's events are sent."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index(None, "account_id", "id"),)

    id: Mapped[str] = mapped_column(IdType, primary_key=True)
    account_id: Mapped[str] = mapped_column(IdType, ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200), default="")
    external_id: Mapped[str] = mapped_column(String(200), default="")
    labels: Mapped[dict[str, str]] = mapped_column(LabelsType, default=dict)
    creator_profile_id: Mapped[str] = mapped_column(IdType, default="")
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    # Empty: every type.
    event_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    ordered: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    rate_limit_per_second: Mapped[int] = mapped_column(Integer, default=0)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str] = mapped_column(Text, default="")
    # The last ordered delivery's sequence number: taken under this row's lock, so
    # the numbers follow commit order.
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    # The earliest time the next attempt may start under rate_limit_per_second,
    # shared by every worker through this row.
    next_send_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    # The first failure since the last success; NULL while the endpoint succeeds.
    failing_since: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    last_success_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=now)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=now, onupdate=now)


class WebhookMessage(Base):
    """An event to send: written in the transaction of the change it describes (the outbox)."""

    __tablename__ = "webhook_messages"
    __table_args__ = (
        Index(None, "account_id", "id"),
        Index(None, "account_id", "idempotency_key", unique=True),
    )

    id: Mapped[str] = mapped_column(IdType, primary_key=True)
    account_id: Mapped[str] = mapped_column(IdType, ForeignKey("accounts.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(200))
    data: Mapped[dict[str, object]] = mapped_column(JSON)
    # NULL for the server's own events, which never collide.
    idempotency_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=now)


class WebhookDelivery(Base):
    """One message to one endpoint: its state, what the last attempt saw, when to try next."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # The workers' claim: what is due.
        Index(None, "status", "next_attempt_at"),
        Index(None, "endpoint_id", "id"),
        # Is an earlier delivery of this ordered endpoint still pending? One probe, however
        # many of its deliveries are done.
        Index(None, "endpoint_id", "status", "seq"),
        Index(None, "message_id"),
    )

    id: Mapped[str] = mapped_column(IdType, primary_key=True)
    account_id: Mapped[str] = mapped_column(IdType, ForeignKey("accounts.id", ondelete="CASCADE"))
    message_id: Mapped[str] = mapped_column(
        IdType, ForeignKey("webhook_messages.id", ondelete="CASCADE")
    )
    endpoint_id: Mapped[str] = mapped_column(
        IdType, ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    event_type: Mapped[str] = mapped_column(String(200))
    # Position in an ordered endpoint's commit order; NULL for an unordered endpoint.
    seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # pending, completed, failed, disabled
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    # A worker's claim: until then no other worker takes the row; a killed worker's
    # claims come back when it passes.
    leased_until: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    lease_token: Mapped[str] = mapped_column(String(40), default="")
    last_attempt_at: Mapped[datetime | None] = mapped_column(Timestamp, nullable=True)
    http_status_code: Mapped[int] = mapped_column(Integer, default=0)
    error_message: Mapped[str] = mapped_column(Text, default="")
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)
    response_headers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    response_content_length: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=now)


class WebhookAttempt(Base):
    """One HTTP attempt of a delivery, for the log."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index(None, "delivery_id", "id"),)

    id: Mapped[str] = mapped_column(IdType, primary_key=True)
    delivery_id: Mapped[str] = mapped_column(
        IdType, ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    attempted_at: Mapped[datetime] = mapped_column(Timestamp, default=now)
    http_status_code: Mapped[int] = mapped_column(Integer, default=0)
    error_message: Mapped[str] = mapped_column(Text, default="")
    latency_ms: Mapped[int] = mapped_column(Integer, default=0)


class SsoConnection(Base):
    """An account's OpenID Provider: where its people sign in, and whose tokens it accepts."""

    __tablename__ = "sso_connections"
    __table_args__ = (Index(None, "account_id", "id"), Index(None, "issuer"))

    id: Mapped[str] = mapped_column(IdType, primary_key=True)
    account_id: Mapped[str] = mapped_column(IdType, ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200), default="")
    external_id: Mapped[str] = mapped_column(String(200), default="")
    labels: Mapped[dict[str, str]] = mapped_column(LabelsType, default=dict)
    creator_profile_id: Mapped[str] = mapped_column(IdType, default="")
    issuer: Mapped[str] = mapped_column(String(2000))
    client_id: Mapped[str] = mapped_column(String(500))
    # Opened only to redeem a code at the token endpoint; never shown again.
    client_secret_ciphertext: Mapped[str] = mapped_column(Text, default="")
    client_secret_hint: Mapped[str] = mapped_column(String(8), default="")
    # From the issuer's discovery document, read when the issuer is set.
    authorization_endpoint: Mapped[str] = mapped_column(String(2000))
    token_endpoint: Mapped[str] = mapped_column(String(2000))
    jwks_uri: Mapped[str] = mapped_column(String(2000))
    allowed_email_domains: Mapped[list[str]] = mapped_column(JSON, default=list)
    role_claim: Mapped[str] = mapped_column(String(200), default="")
    admin_values: Mapped[list[str]] = mapped_column(JSON, default=list)
    create_profiles: Mapped[bool] = mapped_column(Boolean, default=False)
    accept_bearer_tokens: Mapped[bool] = mapped_column(Boolean, default=False)
    audience: Mapped[str] = mapped_column(String(500), default="")
    # "issuer audience" while accept_bearer_tokens, else NULL: one connection on the whole
    # server accepts a given issuer's tokens for a given audience, so a token names its
    # account without doubt.
    bearer_key: Mapped[str | None] = mapped_column(KeyText, nullable=True, unique=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=now)
    updated_at: Mapped[datetime] = mapped_column(Timestamp, default=now, onupdate=now)


class SsoDomain(Base):
    """An email domain and the one connection whose sign-in it starts (server-wide)."""

    __tablename__ = "sso_domains"
    __table_args__ = (Index(None, "connection_id"),)

    domain: Mapped[str] = mapped_column(KeyText, primary_key=True)
    connection_id: Mapped[str] = mapped_column(
        IdType, ForeignKey("sso_connections.id", ondelete="CASCADE")
    )
    account_id: Mapped[str] = mapped_column(IdType)


class SsoIdentity(Base):
    """A person at an IdP (its `sub`) linked to a profile at their first sign-in."""

    __tablename__ = "sso_identities"
    __table_args__ = (Index(None, "profile_id"),)

    connection_id: Mapped[str] = mapped_column(
        IdType, ForeignKey("sso_connections.id", ondelete="CASCADE"), primary_key=True
    )
    subject: Mapped[str] = mapped_column(KeyText, primary_key=True)
    account_id: Mapped[str] = mapped_column(IdType)
    profile_id: Mapped[str] = mapped_column(IdType, ForeignKey("profiles.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=now)


class SsoLogin(Base):
    """A sign-in under way: its state (by hash), nonce and PKCE verifier; used once."""

    __tablename__ = "sso_logins"

    state_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    connection_id: Mapped[str] = mapped_column(
        IdType, ForeignKey("sso_connections.id", ondelete="CASCADE")
    )
    nonce: Mapped[str] = mapped_column(String(100))
    code_verifier: Mapped[str] = mapped_column(String(128))
    redirect_uri: Mapped[str] = mapped_column(String(2000))
    return_to: Mapped[str] = mapped_column(String(2000), default="")
    expires_at: Mapped[datetime] = mapped_column(Timestamp)


class BrowserSession(Base):
    """A signed-in browser: the cookie holds the token, this row only its keyed hash."""

    __tablename__ = "browser_sessions"
    __table_args__ = (Index(None, "profile_id"), Index(None, "api_key_hash"))

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(IdType, ForeignKey("accounts.id", ondelete="CASCADE"))
    # Deleting the profile deletes its sessions; each request checks the profile too.
    profile_id: Mapped[str] = mapped_column(IdType, ForeignKey("profiles.id", ondelete="CASCADE"))
    connection_id: Mapped[str] = mapped_column(IdType, default="")
    # A session started with a pasted API key: its token's keyed hash (never the token).
    # The session acts as that key and ends when the key is disabled, rotated or deleted.
    api_key_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(Timestamp, default=now)
    expires_at: Mapped[datetime] = mapped_column(Timestamp)
