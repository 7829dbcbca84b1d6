"""Alembic, driven from code: the migrations ship inside the package."""

from __future__ import annotations

from enum import Enum
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def _config(engine: Engine | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to `revision` (by default the newest)."""
    config = _config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the database back to `revision` ("base": no tables at all)."""
    config = _config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


class SchemaState(Enum):
    """Where a database's schema stands against this build's migrations (as prose)."""

    CURRENT = "at the latest migration"
    EMPTY = "not migrated; run `cadenya-server migrate`"
    BEHIND = "behind this version; run `cadenya-server migrate`"
    # Migrated by a newer build: `migrate` cannot help, this build is the old one.
    UNKNOWN = "at a revision this version does not know (a newer cadenya-server's?)"


@cache
def _revisions() -> tuple[str | None, frozenset[str]]:
    """The newest revision this build ships, and all of them."""
    scripts = ScriptDirectory.from_config(_config())
    return scripts.get_current_head(), frozenset(s.revision for s in scripts.walk_revisions())


def schema_state(engine: Engine) -> SchemaState:
    """Where the database's schema stands; raises the driver's error if it cannot be reached."""
    head, known = _revisions()
    # Read directly: a MigrationContext logs two lines each time, and readiness asks often.
    with engine.connect() as connection:
        current = (
            connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
            if inspect(connection).has_table("alembic_version")
            else None
        )
    if current == head:
        return SchemaState.CURRENT
    if current is None:
        return SchemaState.EMPTY
    return SchemaState.BEHIND if current in known else SchemaState.UNKNOWN


def pending(engine: Engine) -> bool:
    """Whether the database is behind the migrations this build ships."""
    return schema_state(engine) is not SchemaState.CURRENT
