"""Revocation across processes: two `cadenya-server serve` processes on one database.
A key disabled, rotated or deleted through one is refused by the other on the very
next call: authentication reads the key's row on every request, nothing is cached."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from cadenya import Cadenya, types

from conftest import Server, Tenant, free_port, start_server, stop_server


@pytest.fixture(scope="module")
def second(server: Server) -> Iterator[str]:
    """The base URL of a second server process on the same database."""
    port = free_port()
    process = start_server(server.env, port)
    yield f"http://127.0.0.1:{port}"
    stop_server(process)


def status(base_url: str, token: str) -> int:
    return httpx.get(
        f"{base_url}/v1/whoami", headers={"Authorization": f"Bearer {token}"}, timeout=30
    ).status_code


def new_key(server: Server, account: Tenant) -> types.APIKey:
    return server.client(account.api_key).api_keys.create(
        metadata={"name": "revocable"},
        spec={"permissions": [], "all_workspaces": False, "workspace_assignments": []},
    )


def test_disable_and_enable_reach_the_other_process_at_once(
    server: Server, account: Tenant, second: str
) -> None:
    key = new_key(server, account)
    assert status(second, key.spec.token) == 200
    server.client(account.api_key).api_keys.disable(key.metadata.id)
    assert status(second, key.spec.token) == 401
    server.client(account.api_key).api_keys.enable(key.metadata.id)
    assert status(second, key.spec.token) == 200


def test_a_rotated_away_token_stops_in_the_other_process_at_once(
    server: Server, account: Tenant, second: str
) -> None:
    key = new_key(server, account)
    assert status(second, key.spec.token) == 200
    rotated = server.client(account.api_key).api_keys.rotate(key.metadata.id)
    assert status(second, key.spec.token) == 401
    assert status(second, rotated.spec.token) == 200


def test_a_deleted_key_stops_in_the_other_process_at_once(
    server: Server, account: Tenant, second: str
) -> None:
    key = new_key(server, account)
    assert status(second, key.spec.token) == 200
    server.client(account.api_key).api_keys.delete(key.metadata.id)
    assert status(second, key.spec.token) == 401


def test_changes_made_through_the_second_process_reach_the_first(
    server: Server, account: Tenant, second: str
) -> None:
    key = new_key(server, account)
    assert status(server.base_url, key.spec.token) == 200
    Cadenya(api_key=account.api_key, base_url=second).api_keys.disable(key.metadata.id)
    assert status(server.base_url, key.spec.token) == 401
