"""Helpers shared by the test files."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from cadenya import APIError
from sqlalchemy import create_engine, text

from cadenya_server.kit.db import engine_url
from conftest import Server, free_port, start_server, stop_server

# The fields of every account-scoped resource's metadata on the wire.
METADATA_FIELDS = {"id", "accountId", "name", "profileId", "externalId", "labels", "createdAt"}


def refused(
    call: Callable[[], object], status: int | None = None, code: int | None = None
) -> APIError:
    """The error `call` is refused with; its HTTP status and google.rpc code, when given."""
    with pytest.raises(APIError) as caught:
        call()
    if status is not None:
        assert caught.value.status_code == status, caught.value.message
    if code is not None:
        assert caught.value.code == code
    return caught.value


@contextmanager
def server_with(server: Server, **settings: str) -> Iterator[str]:
    """A server process of its own on the suite's database, with these CADENYA_SERVER_*
    settings (`max_page_bytes="100"`); its base URL."""
    env = {**server.env, **{f"CADENYA_SERVER_{k.upper()}": v for k, v in settings.items()}}
    port = free_port()
    process = start_server(env, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(process)


@contextmanager
def bench_database(prefix: str) -> Iterator[tuple[str, list[str]]]:
    """A benchmark's database kind and the arguments that select it; a PostgreSQL one is
    named `prefix` + a random suffix and dropped afterwards."""
    given = os.environ.get("CADENYA_TEST_DATABASE_URL", "")
    if not given.startswith("postgres"):
        yield "sqlite", ["--database=sqlite"]
        return
    name = f"{prefix}_{secrets.token_hex(4)}"
    try:
        yield (
            "postgresql",
            ["--database=postgresql", f"--postgres-url={given}", f"--postgres-database={name}"],
        )
    finally:
        admin = create_engine(engine_url(given), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
