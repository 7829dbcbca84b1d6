"""bulk writes queue no trigger calls (PostgreSQL)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 02:00:00.000000

The importer indexes a batch at once and marks its transaction so the search
triggers stand aside (profiles.index.bulk_index). On PostgreSQL the mark was a
row in `profile_search_bulk`, which only the trigger functions could read: every
profile of a batch still queued two AFTER trigger events and ran two PL/pgSQL
calls that found the row and returned. A trigger's WHEN cannot read a table but
can read a setting, so the mark there is now a transaction-local setting,
`cadenya.search_bulk`, and WHEN skips the marked rows before anything is queued.
The functions' own check of `profile_search_bulk` stays: that table is empty on
PostgreSQL now. SQLite's triggers read the row in their WHEN already; nothing
changes there.
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

NOT_BULK = "current_setting('cadenya.search_bulk', true) IS DISTINCT FROM 'on'"
# (trigger, event, function, the condition it had)
TRIGGERS = [
    ("profile_search_grams_insert", "INSERT", "profile_search_grams_maintain", None),
    ("profile_search_grams_delete", "DELETE", "profile_search_grams_maintain", None),
    (
        "profile_search_grams_update",
        "UPDATE OF account_id, type, name_key, search_text",
        "profile_search_grams_maintain",
        "OLD.account_id IS DISTINCT FROM NEW.account_id OR OLD.type IS DISTINCT FROM NEW.type"
        " OR OLD.name_key IS DISTINCT FROM NEW.name_key"
        " OR OLD.search_text IS DISTINCT FROM NEW.search_text",
    ),
    ("profile_search_label_grams_insert", "INSERT", "profile_search_label_grams_maintain", None),
    ("profile_search_label_grams_delete", "DELETE", "profile_search_label_grams_maintain", None),
    (
        "profile_search_label_grams_update",
        "UPDATE OF account_id, labels, search_text",
        "profile_search_label_grams_maintain",
        "OLD.account_id IS DISTINCT FROM NEW.account_id"
        " OR OLD.labels IS DISTINCT FROM NEW.labels"
        " OR OLD.search_text IS DISTINCT FROM NEW.search_text",
    ),
]


def upgrade() -> None:
    _create_triggers(bulk_aware=True)


def downgrade() -> None:
    _create_triggers(bulk_aware=False)


def _create_triggers(*, bulk_aware: bool) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for name, event, function, condition in TRIGGERS:
        conditions = [NOT_BULK] if bulk_aware else []
        if condition:
            conditions.append(f"({condition})")
        when = f"WHEN ({' AND '.join(conditions)}) " if conditions else ""
        op.execute(f"DROP TRIGGER {name} ON profiles")
        op.execute(
            f"CREATE TRIGGER {name} AFTER {event} ON profiles FOR EACH ROW "
            f"{when}EXECUTE FUNCTION {function}()"
        )
