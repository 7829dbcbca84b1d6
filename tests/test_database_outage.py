"""PostgreSQL connections lost under the server: idle ones are replaced unseen.

The pool pings a connection only after it has been idle a while
(kit.db.PING_AFTER_IDLE_SECONDS); one that was in use a moment before the loss
fails at most one request, cleanly, and the pool then reconnects.
"""

from __future__ import annotations

import os
import time

import psycopg
import pytest

from cadenya_server.kit.db import PING_AFTER_IDLE_SECONDS
from conftest import Server, Tenant

pytestmark = pytest.mark.skipif(
    not os.environ.get("CADENYA_TEST_DATABASE_URL", "").startswith("postgres"),
    reason="SQLite has no server connection to lose",
)


def _terminate_other_backends(server: Server, database_url: str) -> int:
    """What a restart of PostgreSQL does to the server's connections; how many it ended."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        ended = connection.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    # The suite's own pool lost its connections too: it starts afresh, so that the
    # tests after these do not pay for the one failure a connection in use may cause.
    server.runtime.db.engine.dispose()
    return ended[0] if ended else 0


def test_connections_lost_while_idle_are_replaced_unseen(
    server: Server, account: Tenant, database_url: str
) -> None:
    client = server.client(account.api_key)  # which does not retry (max_retries=0)
    assert client.accounts.retrieve().metadata.id == account.id
    assert _terminate_other_backends(server, database_url) > 0

    time.sleep(PING_AFTER_IDLE_SECONDS + 0.2)

    for _ in range(3):
        assert client.accounts.retrieve().metadata.id == account.id


def test_a_connection_lost_in_use_fails_at_most_one_request_cleanly(
    server: Server, account: Tenant, database_url: str
) -> None:
    with server.http(account.api_key) as http:
        assert http.get("/v1/account").status_code == 200
        assert _terminate_other_backends(server, database_url) > 0

        responses = [http.get("/v1/account") for _ in range(4)]

    first, *rest = responses
    assert [response.status_code for response in rest] == [200] * 3
    if first.status_code != 200:
        assert first.status_code == 503
        assert first.json()["code"] == 14  # UNAVAILABLE, in the contract's error shape
