"""How the worker reads a receiver's answers: Retry-After on 429 and 503, an endpoint
disabled after failing too long, and the metrics that count it all."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from conftest import Server, Tenant, cli, free_port, new_database, start_server, stop_server
from webhook_receiver import OK, Receiver, add_endpoint, webhook_endpoint


def _wait(http: httpx.Client, path: str, done: object, timeout: float = 40) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = http.get(path).json()
        if done(body):  # type: ignore[operator]
            return body
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {body}")


def test_429_and_503_honour_retry_after(server: Server, account: Tenant) -> None:
    # Retry-After 3 s is longer than the suite's first retry delay (1 s).
    answers = {0: (429, {"retry-after": "3"}, 0.0), 1: (503, {"retry-after": "1"}, 0.0)}
    receiver = Receiver(plan=lambda n, d: answers.get(n, OK)).start()
    try:
        endpoint_id = webhook_endpoint(server, account, receiver.url, eventTypes=["r.a"])[
            "metadata"
        ]["id"]
        with server.http(account.api_key) as http:
            http.post("/v1/account/webhook_messages", json={"type": "r.a", "data": {}})
            page = _wait(
                http,
                f"/v1/account/webhook_endpoints/{endpoint_id}/deliveries",
                lambda b: (
                    b["items"]
                    and b["items"][0]["data"]["status"] == "WEBHOOK_DELIVERY_STATUS_COMPLETED"
                ),
            )
        attempts = page["items"][0]["data"]["attempts"]
        assert [a["httpStatusCode"] for a in attempts] == [429, 503, 200]
        times = [d.received_at for d in receiver.deliveries]
        assert times[1] - times[0] >= 2.5
        assert times[2] - times[1] >= 0.8
    finally:
        receiver.stop()


def test_an_endpoint_failing_too_long_is_disabled(
    server_env: dict[str, str], migrated_template: str, tmp_path: Path
) -> None:
    receiver = Receiver(plan=lambda n, d: (500, {}, 0.0)).start()
    with new_database(tmp_path, like=migrated_template) as url:
        env = {
            **server_env,
            "CADENYA_SERVER_DATABASE_URL": url,
            "CADENYA_SERVER_WEBHOOK_DISABLE_AFTER_SECONDS": "1",
            "CADENYA_SERVER_WEBHOOK_RETRY_SCHEDULE": "1,1,1,1,1,1",
        }
        created = json.loads(
            cli(
                env,
                *("accounts", "create", "--name", "D", "--domain", "d.io"),
                *("--admin-email", "a@d.io", "--admin-name", "A", "--json"),
            ).stdout
        )
        port = free_port()
        process = start_server(env, port)
        try:
            headers = {"Authorization": f"Bearer {created['apiKey']}"}
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as http:
                endpoint_id = add_endpoint(http, receiver.url, eventTypes=["d.x"])["metadata"]["id"]
                http.post("/v1/account/webhook_messages", json={"type": "d.x", "data": {}})
                shown = _wait(
                    http,
                    f"/v1/account/webhook_endpoints/{endpoint_id}",
                    lambda b: b["info"]["status"] == "WEBHOOK_ENDPOINT_STATUS_DISABLED",
                )
                assert shown["info"]["disabledReason"] == "failing without a success for 1 s"
                assert shown["info"]["failingSince"]
                (record,) = [
                    a
                    for a in http.get("/v1/account/audit_events").json()["items"]
                    if a["action"] == "webhook_endpoint.disable"
                ]
                assert record["resourceId"] == endpoint_id
                assert record["details"] == {"reason": "failing without a success for 1 s"}
                (item,) = http.get(
                    f"/v1/account/webhook_endpoints/{endpoint_id}/deliveries"
                ).json()["items"]
                # Given up with the endpoint, before the schedule ran out.
                assert item["data"]["status"] == "WEBHOOK_DELIVERY_STATUS_DISABLED"
                assert 2 <= item["data"]["attemptCount"] < 7
                metrics = http.get("/metrics").text
                assert 'cadenya_webhook_attempts_total{outcome="retrying"}' in metrics
                assert "cadenya_webhook_pending_deliveries 0.0" in metrics
                assert "cadenya_webhook_oldest_pending_age_seconds 0.0" in metrics
                assert "cadenya_webhook_attempt_duration_seconds_bucket" in metrics
        finally:
            stop_server(process)
            receiver.stop()
