"""Rate limits through real server processes with low limits, in memory and in Redis."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterator
from itertools import cycle

import httpx
import pytest
import redis
from cadenya import Cadenya

from conftest import Server, Tenant, free_port, make_account
from helpers import server_with

REDIS_URL = "redis://127.0.0.1:6379"
FORGED = "cdy_" + "A" * 40 + "AAAAAA"


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A Redis key prefix of this test's own (Redis is shared), its keys removed afterwards."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"Redis at {REDIS_URL} is unreachable")
    prefix = f"cadenya-test-{secrets.token_hex(6)}"
    yield prefix
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)
    client.close()


def get_account(base_url: str, token: str, **headers: str) -> httpx.Response:
    return httpx.get(
        f"{base_url}/v1/account",
        headers={"Authorization": f"Bearer {token}", **headers},
        timeout=10,
    )


def assert_exhausted(response: httpx.Response, *, limit: str, window_seconds: int) -> int:
    """A 429 in the contract's shape naming `limit`; its Retry-After."""
    assert response.status_code == 429, response.text
    body = response.json()
    assert body["code"] == 8
    assert body["details"] == []
    assert limit in body["message"]
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= window_seconds
    return retry_after


def until_refused(
    send: Callable[[], httpx.Response], *, allowed: int, status: int
) -> httpx.Response:
    """Sends until a 429, which must come after the first `allowed` answers of `status`.

    The sliding window counter may let one or two more through when its window turns
    over meanwhile (it weighs the previous window by how much of it is left), never fewer.
    """
    for sent in range(allowed + 3):
        response = send()
        if response.status_code == 429:
            assert sent >= allowed, f"refused after {sent} requests, {allowed} are allowed"
            return response
        assert response.status_code == status, response.text
    raise AssertionError(f"{allowed + 3} requests and no 429")


def test_failed_authentication_per_address_is_429_with_retry_after(
    server: Server, account: Tenant
) -> None:
    with server_with(server, rate_limit_failed_auth="5/minute") as base_url:
        refused = until_refused(lambda: get_account(base_url, FORGED), allowed=5, status=401)
        assert_exhausted(refused, limit="CADENYA_SERVER_RATE_LIMIT_FAILED_AUTH", window_seconds=60)
        assert "failed authentications" in refused.json()["message"]
        # Refused before any credential is looked at, a good one included...
        assert get_account(base_url, account.api_key).status_code == 429
        # ...but never the operator's probes.
        assert httpx.get(f"{base_url}/healthz", timeout=10).status_code == 200


def test_waiting_as_told_lets_an_address_try_again(server: Server) -> None:
    with server_with(server, rate_limit_failed_auth="3 per 4 seconds") as base_url:
        refused = until_refused(lambda: get_account(base_url, FORGED), allowed=3, status=401)
        retry_after = assert_exhausted(
            refused, limit="CADENYA_SERVER_RATE_LIMIT_FAILED_AUTH", window_seconds=4
        )
        # Retry-After is the counter's estimate of when a place frees up; as the window
        # slides, a second wait may be needed, never many.
        for _ in range(4):
            time.sleep(retry_after)
            response = get_account(base_url, FORGED)
            if response.status_code != 429:
                break
            retry_after = int(response.headers["Retry-After"])
        assert response.status_code == 401


def test_requests_per_credential_is_429_and_spares_other_accounts(
    server: Server, account: Tenant
) -> None:
    other = make_account(server, name="Other", domain="other.example")
    with server_with(server, rate_limit_per_credential="5/minute") as base_url:
        # The official client, until it is refused.
        client = Cadenya(api_key=account.api_key, base_url=base_url)
        for _ in range(5):
            assert client.accounts.retrieve().metadata.id == account.id
        refused = until_refused(
            lambda: get_account(base_url, account.api_key), allowed=0, status=200
        )
        assert_exhausted(
            refused, limit="CADENYA_SERVER_RATE_LIMIT_PER_CREDENTIAL", window_seconds=60
        )
        assert "requests with this credential" in refused.json()["message"]
        # Another account's caller, from the same address, is not affected.
        other_client = Cadenya(api_key=other.api_key, base_url=base_url)
        for _ in range(5):
            assert other_client.accounts.retrieve().metadata.id == other.id
        # A 429 of the credential limit is not a failed authentication.
        assert get_account(base_url, FORGED).status_code == 401


def test_two_servers_sharing_redis_share_the_budget(
    server: Server, account: Tenant, redis_prefix: str
) -> None:
    shared = {
        "redis_url": REDIS_URL,
        "redis_key_prefix": redis_prefix,
        "rate_limit_per_credential": "6/minute",
        "rate_limit_failed_auth": "6/minute",
    }
    with server_with(server, **shared) as first, server_with(server, **shared) as second:
        # In turns: each server alone would let 6 through, 12 together; shared, 6 (or
        # one or two more, see until_refused) in all.
        servers = cycle([first, second])
        refused = until_refused(
            lambda: get_account(next(servers), account.api_key), allowed=6, status=200
        )
        assert_exhausted(
            refused, limit="CADENYA_SERVER_RATE_LIMIT_PER_CREDENTIAL", window_seconds=60
        )
        assert get_account(next(servers), account.api_key).status_code == 429

        refused = until_refused(lambda: get_account(next(servers), FORGED), allowed=6, status=401)
        assert_exhausted(refused, limit="CADENYA_SERVER_RATE_LIMIT_FAILED_AUTH", window_seconds=60)
        assert get_account(next(servers), FORGED).status_code == 429


def test_redis_down_falls_back_to_each_process_memory(server: Server, account: Tenant) -> None:
    # A port nobody listens on: Redis configured but down. Requests are served, and
    # the limit still holds, counted in the process.
    down = f"redis://127.0.0.1:{free_port()}"
    with server_with(server, redis_url=down, rate_limit_per_credential="3/minute") as base_url:
        refused = until_refused(
            lambda: get_account(base_url, account.api_key), allowed=3, status=200
        )
        assert_exhausted(
            refused, limit="CADENYA_SERVER_RATE_LIMIT_PER_CREDENTIAL", window_seconds=60
        )


def test_forwarded_for_is_trusted_only_from_configured_proxies(server: Server) -> None:
    def guess(base_url: str, client: str) -> httpx.Response:
        return get_account(base_url, FORGED, **{"X-Forwarded-For": client})

    with server_with(server, rate_limit_failed_auth="2/minute") as base_url:
        # Not from a trusted proxy: whatever X-Forwarded-For says, it is one client.
        addresses = (f"198.51.100.{n}" for n in range(10))
        until_refused(lambda: guess(base_url, next(addresses)), allowed=2, status=401)
    with server_with(
        server, rate_limit_failed_auth="2/minute", forwarded_allow_ips="127.0.0.1"
    ) as base_url:
        until_refused(lambda: guess(base_url, "198.51.100.1"), allowed=2, status=401)
        # Behind a trusted proxy, another client has a budget of its own...
        assert guess(base_url, "198.51.100.2").status_code == 401
        # ...but not another address of the same IPv6 /64, one subscriber's.
        until_refused(lambda: guess(base_url, "2001:db8:0:1::1"), allowed=2, status=401)
        assert guess(base_url, "2001:db8:0:1:ffff::2").status_code == 429
        assert guess(base_url, "2001:db8:0:2::1").status_code == 401
