"""Migrations go down and up again on a database with profiles in it, nothing lost.

A database of its own (a SQLite file, or a new PostgreSQL database when the
suite runs on PostgreSQL): the shared one serves the other tests meanwhile.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, select

from cadenya_server.kit import migrate
from cadenya_server.kit.db import Database
from cadenya_server.models import Profile, ProfileLabel, ProfileSearchLabelGram
from cadenya_server.profiles.search import index
from conftest import cli, new_database


@pytest.fixture
def own_database(tmp_path: Path) -> Iterator[str]:
    with new_database(tmp_path) as url:
        yield url


def test_label_migrations_go_down_and_up_again(
    own_database: str, server_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**server_env, "CADENYA_SERVER_DATABASE_URL": own_database}
    cli(env, "migrate")
    created = json.loads(
        cli(
            env,
            "accounts",
            "create",
            "--name",
            "Initech",
            "--domain",
            "initech.test",
            "--admin-email",
            "bill@initech.test",
            "--admin-name",
            "Bill Lumbergh",
            "--json",
        ).stdout
    )
    account_id = created["accountId"]
    records = tmp_path / "staff.jsonl"
    records.write_text(
        "".join(
            json.dumps({"name": f"Peter {n}", "email": f"p{n}@initech.test", "labels": {"t": "a"}})
            + "\n"
            for n in range(25)
        )
    )
    cli(env, "profiles", "import", "--account", account_id, str(records))
    cli(env, "profiles", "count-labels", "--account", account_id)
    db = Database(own_database)
    try:

        def state() -> tuple[int, int, bool]:
            with db.transaction(write=False) as session:
                profiles = session.scalar(select(func.count()).select_from(Profile))
                label_grams = session.scalar(
                    select(func.count()).select_from(ProfileSearchLabelGram)
                )
                return profiles, label_grams, index.label_grams_marked(session, account_id)

        profiles, label_grams, marked = state()
        assert profiles == 25 + 2 and label_grams > 0 and marked

        migrate.downgrade(db.engine, "0004")
        cli(env, "migrate")
        # The profiles stay; the label counts start again from nothing, unmarked.
        assert state() == (profiles, 0, False)
        # The label rows carry their profile's text again (0006 fills it in).
        with db.transaction(write=False) as session:
            carried = session.execute(
                select(ProfileLabel.name_key, ProfileLabel.search_text)
                .join(Profile, Profile.id == ProfileLabel.profile_id)
                .where(
                    ProfileLabel.name_key == Profile.name_key,
                    ProfileLabel.search_text == Profile.search_text,
                )
            ).all()
        assert len(carried) == 25 and ("peter 7", "peter 7\np7@initech.test") in carried
        cli(env, "profiles", "count-labels", "--account", account_id)
        assert state() == (profiles, label_grams, True)

        # All the way down, every table gone, and up again to the schema the server needs.
        migrate.downgrade(db.engine, "base")
        with db.engine.connect() as connection:
            assert inspect(connection).get_table_names() == ["alembic_version"]
        cli(env, "migrate")
        assert not migrate.pending(db.engine)
    finally:
        db.dispose()
