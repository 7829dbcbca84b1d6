"""Webhooks end to end: a change made with the official client reaches a real receiver
on loopback, signed so that `cadenya.verify_webhook` and `standardwebhooks` accept it;
one message per change and none for a rollback; retries, 410, timeouts, redirects;
rotation's grace window; the delivery log and its actions."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cadenya
import httpx
import pytest
from cadenya import types
from sqlalchemy import func, select

from cadenya_server import __version__
from cadenya_server.auth.caller import Caller
from cadenya_server.models import WebhookMessage
from cadenya_server.workspaces import service as workspaces
from cadenya_server.workspaces.schemas import CreateWorkspaceRequest
from conftest import Server, Tenant, cli, jwt_for, make_account, make_api_key, make_profile
from helpers import server_with
from webhook_receiver import (
    OK,
    Delivery,
    Receiver,
    add_endpoint,
    expected_signature,
    secret_of,
    signatures,
    verify,
    webhook_endpoint,
)

ULID = "[0-9A-HJKMNP-TV-Z]{26}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


def body(delivery: Delivery) -> dict[str, Any]:
    return json.loads(delivery.body)


def deliveries_of(server: Server, tenant: Tenant, endpoint_id: str, **params: str) -> list[dict]:
    with server.http(tenant.api_key) as http:
        response = http.get(
            f"/v1/account/webhook_endpoints/{endpoint_id}/deliveries", params=params
        )
    assert response.status_code == 200, response.text
    return response.json()["items"]


def wait_delivery(
    server: Server,
    tenant: Tenant,
    endpoint_id: str,
    status: str,
    timeout: float = 30,
    **params: str,
) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        items = deliveries_of(server, tenant, endpoint_id, **params)
        if items and items[0]["data"]["status"] == status:
            return items[0]
        time.sleep(0.1)
    raise AssertionError(f"no {status} delivery within {timeout} s: {items}")


def test_a_change_reaches_the_receiver_signed(
    server: Server, account: Tenant, receiver: Receiver
) -> None:
    endpoint = webhook_endpoint(server, account, receiver.url, eventTypes=["workspace.created"])
    assert re.fullmatch(f"whep_{ULID}", endpoint["metadata"]["id"])
    assert endpoint["info"]["status"] == "WEBHOOK_ENDPOINT_STATUS_ACTIVE"
    client = server.client(account.api_key)
    created = client.workspace_admin.create(metadata={"name": "Research"}, spec={})

    (delivery,) = receiver.wait_count(1)
    secret = secret_of(client)
    verify(delivery, secret)
    assert signatures(delivery) == [expected_signature(secret, delivery)]
    assert re.fullmatch(f"msg_{ULID}", delivery.id)
    assert delivery.headers["content-type"] == "application/json"
    assert f"cadenya-server/{__version__}" in delivery.headers["user-agent"]
    assert abs(int(delivery.headers["webhook-timestamp"]) - time.time()) < 60
    event = body(delivery)
    assert set(event) == {"type", "timestamp", "data"}
    assert event["type"] == "workspace.created"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", event["timestamp"])
    # The resource exactly as the API returns it to an administrator.
    with server.http(account.api_key) as http:
        shown = http.get(f"/v1/account/workspaces/{created.metadata.id}").json()
    assert event["data"] == shown

    (logged,) = deliveries_of(server, account, endpoint["metadata"]["id"])
    assert logged["data"]["webhookId"] == delivery.id
    # The delivery log decodes as the official client's WebhookDelivery.
    decoded = types.WebhookDelivery._from_json(
        wait_delivery(
            server, account, endpoint["metadata"]["id"], "WEBHOOK_DELIVERY_STATUS_COMPLETED"
        )
    )
    assert decoded.data.status == "WEBHOOK_DELIVERY_STATUS_COMPLETED"
    assert decoded.data.attempt_count == 1 and decoded.data.http_status_code == 200
    assert decoded.data.webhook_url == receiver.url


def _changes(server: Server, tenant: Tenant) -> dict[str, Any]:
    """One change of each kind the audit trail records; the type each must emit."""
    client = server.client(tenant.api_key)
    http = server.http(tenant.api_key)
    done: dict[str, Any] = {}

    def ok(response: Any) -> dict:
        assert response.status_code == 200, response.text
        return response.json()

    profile = ok(
        http.post("/v1/account/profiles", json={"spec": {"email": "pat@acme.io", "name": "Pat"}})
    )
    done["profile.created"] = profile
    done["profile.updated"] = ok(
        http.patch(
            f"/v1/account/profiles/{profile['metadata']['id']}",
            json={"spec": {"name": "Pat Two"}, "updateMask": "spec.name"},
        )
    )
    workspace = client.workspace_admin.create(metadata={"name": "Lab"}, spec={})
    wid = workspace.metadata.id
    done["workspace.created"] = wid
    client.workspace_admin.update(
        workspace_id=wid, metadata={"name": "Lab 2"}, update_mask="metadata.name"
    )
    done["workspace.updated"] = wid
    client.workspace_admin.add_member(workspace_id=wid, profile_id=profile["metadata"]["id"])
    done["member.added"] = profile["metadata"]["id"]
    client.workspace_admin.remove_member(profile["metadata"]["id"], workspace_id=wid)
    done["member.removed"] = profile["metadata"]["id"]
    key = client.api_keys.create(metadata={"name": "ci"}, spec={"permissions": ["workspaces:read"]})
    kid = key.metadata.id
    done["api_key.created"] = kid
    client.api_keys.update(kid, metadata={"name": "ci 2"}, update_mask="metadata.name")
    done["api_key.updated"] = kid
    client.api_keys.rotate(kid)
    done["api_key.rotated"] = kid
    client.api_keys.disable(kid)
    done["api_key.disabled"] = kid
    client.api_keys.enable(kid)
    done["api_key.enabled"] = kid
    client.api_keys.add_workspace(kid, workspace_id=wid)
    done["api_key.workspace_added"] = kid
    client.api_keys.remove_workspace(kid, workspace_id=wid)
    done["api_key.workspace_removed"] = kid
    client.api_keys.delete(kid)
    done["api_key.deleted"] = kid
    client.workspace_admin.archive(workspace_id=wid)
    done["workspace.archived"] = wid
    trusted = client.trusted_endpoints.create(
        metadata={"name": "x"}, spec={"host": "hooks.example.com"}
    )
    done["trusted_endpoint.created"] = trusted.metadata.id
    client.trusted_endpoints.delete(trusted.metadata.id)
    done["trusted_endpoint.deleted"] = trusted.metadata.id
    ok(http.delete(f"/v1/account/profiles/{profile['metadata']['id']}"))
    done["profile.deleted"] = profile["metadata"]["id"]
    client.accounts.rotate_webhook_signing_key()
    done["account.webhook_signing_key_rotated"] = tenant.id
    ok(http.post("/v1/account:expirePreviousWebhookSigningKey"))
    done["account.previous_webhook_signing_key_expired"] = tenant.id
    client.accounts.rotate_challenge_token()
    done["account.challenge_token_rotated"] = tenant.id
    # Reading is not a change: no event.
    client.api_keys.list(workspace_id=tenant.workspace_id)
    http.close()
    return done


def messages(server: Server, tenant: Tenant, **params: str) -> list[dict]:
    with server.http(tenant.api_key) as http:
        response = http.get("/v1/account/webhook_messages", params={"limit": "1000", **params})
    assert response.status_code == 200, response.text
    return response.json()["items"]


def test_each_kind_of_change_emits_exactly_one_message(server: Server, receiver: Receiver) -> None:
    tenant = make_account(server, name="Events", domain="events.io")
    endpoint = webhook_endpoint(server, tenant, receiver.url)
    done = _changes(server, tenant)
    by_type: dict[str, list[dict]] = {}
    for message in messages(server, tenant):
        by_type.setdefault(message["type"], []).append(message)
    assert set(by_type) == {*done, "webhook_endpoint.created"}
    for event_type, resource_id in done.items():
        (message,) = by_type[event_type]
        data = message["data"]
        expected = resource_id["metadata"]["id"] if isinstance(resource_id, dict) else resource_id
        if event_type.startswith("member."):
            assert data["profileId"] == expected
            assert data["workspaceId"] == done["workspace.created"]
        else:
            assert data["metadata"]["id"] == expected, event_type
        # Never a secret.
        text = json.dumps(data)
        # (an API key shows masked, `cdy_********abcd`, as the API lists it)
        assert "whsec_" not in text and not re.search(r"cdy_\w{20}", text), event_type
    assert by_type["profile.updated"][0]["data"] == done["profile.updated"]
    assert by_type["webhook_endpoint.created"][0]["data"] == endpoint
    # Every message reaches the receiver, signed with the secret of its moment.
    receiver.wait_for(lambda ds: len({d.id for d in ds}) == len(done) + 1)
    assert {d.id for d in receiver.deliveries} == {m["id"] for ms in by_type.values() for m in ms}


def test_a_change_that_rolls_back_emits_nothing(server: Server, receiver: Receiver) -> None:
    tenant = make_account(server, name="Rollback", domain="rollback.io")
    webhook_endpoint(server, tenant, receiver.url)
    before = len(messages(server, tenant))
    caller = Caller.for_user(account_id=tenant.id, profile_id=tenant.admin_profile_id, role="admin")
    with pytest.raises(RuntimeError), server.runtime.db.transaction() as session:
        workspaces.create(
            session=session,
            caller=caller,
            body=CreateWorkspaceRequest.model_validate({"metadata": {"name": "Doomed"}}),
            max_active=100,
        )
        # The audit record and the event are in this transaction: both must vanish.
        assert session.scalar(select(func.count()).select_from(WebhookMessage)) > 0
        raise RuntimeError("the request fails after the change")
    # Requests refused over HTTP emit nothing either.
    client = server.client(tenant.api_key)
    with server.http(tenant.api_key) as http:
        assert http.post("/v1/account/workspaces", json={"metadata": {}}).status_code == 400
        profile = {"spec": {"email": "dup@rollback.io"}}
        assert http.post("/v1/account/profiles", json=profile).status_code == 200
        assert http.post("/v1/account/profiles", json=profile).status_code == 409
    only = client.workspace_admin.list_account().items
    assert all(w.metadata.name != "Doomed" for w in only)
    after = messages(server, tenant)
    assert len(after) == before + 1 and after[0]["type"] == "profile.created"
    time.sleep(0.5)
    assert len({d.id for d in receiver.deliveries}) == before + 1


def test_500_twice_then_200_is_three_attempts_and_one_completed_delivery(
    server: Server, account: Tenant
) -> None:
    receiver = Receiver(plan=lambda n, d: (500, {}, 0.0) if n < 2 else OK).start()
    try:
        endpoint = webhook_endpoint(server, account, receiver.url, eventTypes=["order.paid"])
        endpoint_id = endpoint["metadata"]["id"]
        with server.http(account.api_key) as http:
            message = http.post(
                "/v1/account/webhook_messages", json={"type": "order.paid", "data": {"n": 1}}
            ).json()
        done = wait_delivery(server, account, endpoint_id, "WEBHOOK_DELIVERY_STATUS_COMPLETED")
        assert [d.id for d in receiver.deliveries] == [message["id"]] * 3
        data = done["data"]
        assert data["attemptCount"] == 3 and data["httpStatusCode"] == 200
        assert [a["httpStatusCode"] for a in data["attempts"]] == [500, 500, 200]
        assert data["attempts"][0]["errorMessage"] == "the endpoint answered 500"
        secret = secret_of(server.client(account.api_key))
        for delivery in receiver.deliveries:
            verify(delivery, secret)
        # Each attempt is signed at its own time, for the same message id and body.
        assert len({d.body for d in receiver.deliveries}) == 1
    finally:
        receiver.stop()


def test_410_disables_the_endpoint(server: Server, account: Tenant, receiver: Receiver) -> None:
    gone = Receiver(plan=lambda n, d: (410, {}, 0.0)).start()
    try:
        # Another endpoint hears of the disabling, as of an administrator's :disable.
        webhook_endpoint(server, account, receiver.url, eventTypes=["webhook_endpoint.disabled"])
        endpoint = webhook_endpoint(server, account, gone.url, eventTypes=["order.paid"])
        endpoint_id = endpoint["metadata"]["id"]
        with server.http(account.api_key) as http:
            http.post("/v1/account/webhook_messages", json={"type": "order.paid", "data": {}})
            failed = wait_delivery(server, account, endpoint_id, "WEBHOOK_DELIVERY_STATUS_FAILED")
            assert failed["data"]["attemptCount"] == 1
            shown = http.get(f"/v1/account/webhook_endpoints/{endpoint_id}").json()
            assert shown["info"]["status"] == "WEBHOOK_ENDPOINT_STATUS_DISABLED"
            assert "410" in shown["info"]["disabledReason"]
            (event,) = receiver.wait_count(1)
            assert body(event)["type"] == "webhook_endpoint.disabled"
            assert body(event)["data"] == shown
            audit = http.get("/v1/account/audit_events").json()["items"]
            (record,) = [
                a
                for a in audit
                if a["action"] == "webhook_endpoint.disable" and a["resourceId"] == endpoint_id
            ]
            assert record["actorProfileId"] == ""
            assert record["details"] == {"reason": shown["info"]["disabledReason"]}
            # Nothing more is sent to it; enabling it again sends again.
            http.post("/v1/account/webhook_messages", json={"type": "order.paid", "data": {}})
            time.sleep(1)
            assert len(gone.deliveries) == 1
            refused = http.post(f"/v1/account/webhook_endpoints/{endpoint_id}:sendTest")
            assert refused.status_code == 400 and refused.json()["code"] == 9
            enabled = http.post(f"/v1/account/webhook_endpoints/{endpoint_id}:enable")
            assert enabled.json()["info"]["status"] == "WEBHOOK_ENDPOINT_STATUS_ACTIVE"
    finally:
        gone.stop()


def test_a_slow_receiver_times_out_and_a_redirect_is_not_followed(
    server: Server, account: Tenant
) -> None:
    target = Receiver().start()
    slow = Receiver(plan=lambda n, d: (200, {}, 5.0) if n == 0 else OK).start()
    moved = Receiver(plan=lambda n, d: (302, {"location": target.url}, 0.0)).start()
    try:
        slow_id = webhook_endpoint(server, account, slow.url, eventTypes=["a.slow"])["metadata"][
            "id"
        ]
        moved_id = webhook_endpoint(server, account, moved.url, eventTypes=["a.moved"])["metadata"][
            "id"
        ]
        with server.http(account.api_key) as http:
            http.post("/v1/account/webhook_messages", json={"type": "a.slow", "data": {}})
            http.post("/v1/account/webhook_messages", json={"type": "a.moved", "data": {}})
        done = wait_delivery(server, account, slow_id, "WEBHOOK_DELIVERY_STATUS_COMPLETED")
        first = done["data"]["attempts"][0]
        assert first["errorMessage"] == "timed out after 2 s" and first["httpStatusCode"] == 0
        moved.wait_count(2)
        (item,) = deliveries_of(server, account, moved_id)
        assert item["data"]["httpStatusCode"] == 302
        assert item["data"]["errorMessage"].startswith("redirect not followed: 302 to ")
        assert target.deliveries == []
    finally:
        for r in (target, slow, moved):
            r.stop()


def test_rotation_signs_with_both_secrets_until_the_window_ends(
    server: Server, receiver: Receiver
) -> None:
    tenant = make_account(server, name="Rotate", domain="rotate.io")
    webhook_endpoint(server, tenant, receiver.url, eventTypes=["order.paid"])
    client = server.client(tenant.api_key)
    http = server.http(tenant.api_key)

    def delivered() -> Delivery:
        count = len(receiver.deliveries)
        http.post("/v1/account/webhook_messages", json={"type": "order.paid", "data": {}})
        return receiver.wait_count(count + 1)[count]

    old = secret_of(client)
    # The official client sends no body: the server's default window (a day).
    new = client.accounts.rotate_webhook_signing_key().webhook_events_hmac_secret
    account = http.get("/v1/account").json()
    expires = account["info"]["previousSecretExpiresAt"]
    assert expires and account["info"]["webhookEventsHmacSecret"] == new
    during = delivered()
    assert signatures(during) == [
        expected_signature(new, during),
        expected_signature(old, during),
    ]
    verify(during, old)
    verify(during, new)

    ended = http.post("/v1/account:expirePreviousWebhookSigningKey")
    assert ended.status_code == 200 and ended.json()["info"]["previousSecretExpiresAt"] == ""
    after = delivered()
    verify(after, new)
    assert signatures(after) == [expected_signature(new, after)]
    with pytest.raises(cadenya.WebhookVerificationError):
        cadenya.verify_webhook(old, after.body, after.headers)

    # gracePeriodSeconds 0: the old secret stops at once.
    rotated = http.post(
        "/v1/account:rotateWebhookSigningKey", json={"gracePeriodSeconds": 0}
    ).json()
    assert rotated["previousSecretExpiresAt"] == ""
    newest = rotated["webhookEventsHmacSecret"]
    last = delivered()
    assert signatures(last) == [expected_signature(newest, last)]
    # A short window passes by itself.
    short = http.post("/v1/account/rotate_webhook_signing_key", json={"gracePeriodSeconds": 1})
    assert short.json()["previousSecretExpiresAt"]
    time.sleep(1.2)
    lapsed = delivered()
    assert signatures(lapsed) == [
        expected_signature(short.json()["webhookEventsHmacSecret"], lapsed)
    ]
    bad = http.post("/v1/account:rotateWebhookSigningKey", json={"gracePeriodSeconds": -1})
    assert bad.status_code == 400 and bad.json()["code"] == 3
    http.close()


def test_delivery_log_actions(server: Server, account: Tenant) -> None:
    answers = {"fail": True}
    receiver = Receiver(plan=lambda n, d: (500, {}, 0.0) if answers["fail"] else OK).start()
    try:
        endpoint = webhook_endpoint(server, account, receiver.url, eventTypes=["order.paid"])
        endpoint_id = endpoint["metadata"]["id"]
        http = server.http(account.api_key)
        message = http.post(
            "/v1/account/webhook_messages", json={"type": "order.paid", "data": {"n": 1}}
        ).json()
        failed = wait_delivery(server, account, endpoint_id, "WEBHOOK_DELIVERY_STATUS_FAILED")
        assert failed["data"]["attemptCount"] == 4  # at once, then the schedule 1,1,2
        assert failed["data"]["nextAttemptAt"] == ""
        answers["fail"] = False
        retried = http.post(
            f"/v1/account/webhook_endpoints/{endpoint_id}/deliveries/"
            f"{failed['metadata']['id']}:retry"
        )
        assert retried.status_code == 200, retried.text
        wait_delivery(server, account, endpoint_id, "WEBHOOK_DELIVERY_STATUS_COMPLETED")

        answers["fail"] = True
        http.post("/v1/account/webhook_messages", json={"type": "order.paid", "data": {"n": 2}})
        wait_delivery(server, account, endpoint_id, "WEBHOOK_DELIVERY_STATUS_FAILED")
        answers["fail"] = False
        recovered = http.post(
            f"/v1/account/webhook_endpoints/{endpoint_id}:recover",
            json={"since": "2020-01-01T00:00:00Z"},
        )
        assert recovered.json() == {"requeued": 1}
        wait_delivery(server, account, endpoint_id, "WEBHOOK_DELIVERY_STATUS_COMPLETED")

        test = http.post(f"/v1/account/webhook_endpoints/{endpoint_id}:sendTest").json()
        assert test["type"] == "webhook.test"
        receiver.wait_for(lambda ds: ds[-1].id == test["id"])
        # Filters and the message log.
        done = deliveries_of(
            server, account, endpoint_id, status="WEBHOOK_DELIVERY_STATUS_COMPLETED"
        )
        assert len(done) == 3
        assert (
            deliveries_of(server, account, endpoint_id, eventType="webhook.test")[0]["data"][
                "webhookId"
            ]
            == test["id"]
        )
        got = http.get(f"/v1/account/webhook_messages/{message['id']}").json()
        assert got == message
        listed = http.get("/v1/account/webhook_messages", params={"type": "order.paid"}).json()
        assert [m["id"] for m in listed["items"]][-1] == message["id"]
        http.close()
    finally:
        receiver.stop()


def test_the_idempotency_key_returns_the_first_message(
    server: Server, account: Tenant, receiver: Receiver
) -> None:
    webhook_endpoint(server, account, receiver.url, eventTypes=["objective_event.tool_called"])
    with server.http(account.api_key) as http:
        sent = {
            "type": "objective_event.tool_called",
            "data": {"tool": "search"},
            "idempotencyKey": "evt-1",
        }
        first = http.post("/v1/account/webhook_messages", json=sent).json()
        again = http.post(
            "/v1/account/webhook_messages", json={**sent, "data": {"tool": "other"}}
        ).json()
        assert again == first
        other = http.post(
            "/v1/account/webhook_messages", json={**sent, "idempotencyKey": "evt-2"}
        ).json()
        assert other["id"] != first["id"]
    receiver.wait_count(2)
    time.sleep(0.5)
    assert sorted(d.id for d in receiver.deliveries) == sorted([first["id"], other["id"]])


def test_webhook_endpoint_validation_and_trust(server: Server, account: Tenant) -> None:
    with server.http(account.api_key) as http:

        def create(spec: dict) -> Any:
            return http.post(
                "/v1/account/webhook_endpoints", json={"metadata": {"name": "x"}, "spec": spec}
            )

        untrusted = create({"url": "https://hooks.untrusted.example/in"})
        assert untrusted.status_code == 400
        assert untrusted.json()["code"] == 9
        assert "'hooks.untrusted.example'" in untrusted.json()["message"]
        for bad in (
            {"url": "ftp://x.example/"},
            {"url": "/relative"},
            {"url": "https://user:pw@hooks.example.com/"},
            {"url": "https://{{host}}/x"},
            {"url": "https://a.example/", "eventTypes": ["Not A Type"]},
            {"url": "https://a.example/", "rateLimitPerSecond": -1},
            {"url": "https://a.example/", "unknown": 1},
        ):
            response = create(bad)
            assert response.status_code == 400, (bad, response.text)
            assert response.json()["code"] == 3, bad
        http.post(
            "/v1/account/trusted_endpoints",
            json={"metadata": {"name": "h"}, "spec": {"host": "hooks.example.com"}},
        )
        made = create({"url": "https://hooks.example.com/in", "ordered": True})
        assert made.status_code == 200, made.text
        endpoint_id = made.json()["metadata"]["id"]
        patched = http.patch(
            f"/v1/account/webhook_endpoints/{endpoint_id}",
            json={"spec": {"rateLimitPerSecond": 5}, "updateMask": "spec.rateLimitPerSecond"},
        )
        assert patched.json()["spec"] == {
            "url": "https://hooks.example.com/in",
            "description": "",
            "eventTypes": [],
            "ordered": True,
            "rateLimitPerSecond": 5,
        }
        moved = http.patch(
            f"/v1/account/webhook_endpoints/{endpoint_id}",
            json={"spec": {"url": "https://elsewhere.example/"}, "updateMask": "spec.url"},
        )
        assert moved.status_code == 400 and moved.json()["code"] == 9
        listed = http.get("/v1/account/webhook_endpoints").json()
        assert [e["metadata"]["id"] for e in listed["items"]] == [endpoint_id]
        assert http.delete(f"/v1/account/webhook_endpoints/{endpoint_id}").json() == {}
        assert http.get(f"/v1/account/webhook_endpoints/{endpoint_id}").status_code == 404


def test_tenant_isolation_and_scopes(server: Server, account: Tenant) -> None:
    other = make_account(server, name="Other", domain="other.io")
    with server.http(other.api_key) as http:
        http.post(
            "/v1/account/trusted_endpoints",
            json={"metadata": {"name": "h"}, "spec": {"host": "hooks.other.io"}},
        )
        theirs = http.post(
            "/v1/account/webhook_endpoints",
            json={"metadata": {"name": "x"}, "spec": {"url": "https://hooks.other.io/"}},
        ).json()["metadata"]["id"]
        their_message = http.post(
            "/v1/account/webhook_messages", json={"type": "a.b", "data": {}}
        ).json()["id"]
    base = f"/v1/account/webhook_endpoints/{theirs}"
    with server.http(account.api_key) as http:
        for method, path in (
            ("GET", base),
            ("PATCH", base),
            ("DELETE", base),
            ("POST", f"{base}:enable"),
            ("POST", f"{base}:disable"),
            ("POST", f"{base}:sendTest"),
            ("GET", f"{base}/deliveries"),
            ("GET", f"/v1/account/webhook_messages/{their_message}"),
        ):
            response = http.request(method, path, json={} if method == "PATCH" else None)
            assert response.status_code == 404, (method, path, response.text)
        assert http.get("/v1/account/webhook_messages").json()["items"] == []

    member = make_profile(server, account.id, name="Mo", email="mo@acme.io")
    reader = make_api_key(server, account, permissions=["webhooks:read"])
    nothing = make_api_key(server, account, permissions=["workspaces:manage"])
    for token, may_read in (
        (jwt_for(server, member, account.id), False),
        (nothing, False),
        (reader, True),
    ):
        with server.http(token) as http:
            listed = http.get("/v1/account/webhook_endpoints")
            assert listed.status_code == (200 if may_read else 403), listed.text
            assert http.get("/v1/account/webhook_messages").status_code == (
                200 if may_read else 403
            )
            for path, payload in (
                ("/v1/account/webhook_endpoints", {"metadata": {"name": "x"}, "spec": {}}),
                ("/v1/account/webhook_messages", {"type": "a.b", "data": {}}),
            ):
                refused = http.post(path, json=payload)
                assert refused.status_code == 403 and refused.json()["code"] == 7


def test_an_import_emits_one_event_per_profile_created_or_changed(
    server: Server, receiver: Receiver, tmp_path: Path
) -> None:
    tenant = make_account(server, name="Imports", domain="imports.io")
    webhook_endpoint(
        server, tenant, receiver.url, eventTypes=["profile.created", "profile.updated"]
    )
    path = tmp_path / "people.csv"
    path.write_text("name,email\n" + "".join(f"P{i},p{i}@imports.io\n" for i in range(30)))
    assert cli(server.env, "profiles", "import", "--account", tenant.id, str(path)).returncode == 0
    path.write_text("name,email\nP0 again,p0@imports.io\nNew,new@imports.io\n")
    assert cli(server.env, "profiles", "import", "--account", tenant.id, str(path)).returncode == 0
    receiver.wait_for(lambda ds: len({d.id for d in ds}) == 32)
    events = [body(d) for d in receiver.deliveries]
    created = [e["data"]["spec"]["email"] for e in events if e["type"] == "profile.created"]
    updated = [e["data"]["spec"]["email"] for e in events if e["type"] == "profile.updated"]
    assert sorted(created) == sorted([*(f"p{i}@imports.io" for i in range(30)), "new@imports.io"])
    assert updated == ["p0@imports.io"]
    (changed,) = [e["data"] for e in events if e["type"] == "profile.updated"]
    with server.http(tenant.api_key) as http:
        shown = http.get(f"/v1/account/profiles/{changed['metadata']['id']}").json()
    assert changed == shown


def test_an_ordered_endpoint_sees_commit_order_even_after_a_failure(
    server: Server, account: Tenant
) -> None:
    # The second message fails twice, the eleventh once; the ones after each wait for it,
    # also when they were claimed with it in one run.
    failures = {1: 2, 10: 1}

    def plan(n: int, d: Delivery) -> tuple[int, dict, float]:
        step = body(d)["data"]["n"]
        if failures.get(step, 0) > 0:
            failures[step] -= 1
            return (500, {}, 0.0)
        return OK

    receiver = Receiver(plan=plan).start()
    try:
        webhook_endpoint(server, account, receiver.url, eventTypes=["seq.step"], ordered=True)
        with server.http(account.api_key) as http:
            for n in range(20):
                http.post(
                    "/v1/account/webhook_messages", json={"type": "seq.step", "data": {"n": n}}
                )
        receiver.wait_for(lambda ds: len({d.id for d in ds}) == 20, timeout=40)
        seen = [body(d)["data"]["n"] for d in receiver.deliveries]
        # Retries repeat a message, never reorder: drop the repeats and the order is exact.
        assert list(dict.fromkeys(seen)) == list(range(20))
        assert seen.count(1) == 3 and seen.count(10) == 2
        assert all(later > 1 for later in seen[seen.index(1) + 3 :])
        assert all(later > 10 for later in seen[seen.index(10) + 2 :])
    finally:
        receiver.stop()


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "[::ffff:127.0.0.1]"])
def test_the_servers_allow_list_reaches_loopback(server: Server, host: str) -> None:
    """The suite's servers run with CADENYA_SERVER_WEBHOOK_ALLOWED_NETWORKS=127.0.0.0/8,::1."""
    tenant = make_account(server, name="Loop", domain="loop.io")
    receiver = Receiver().start(host="::" if host.startswith("[") else "127.0.0.1")
    try:
        webhook_endpoint(server, tenant, f"http://{host}:{receiver.port}/hooks", eventTypes=["a.b"])
        with server.http(tenant.api_key) as http:
            http.post("/v1/account/webhook_messages", json={"type": "a.b", "data": {}})
        (delivery,) = receiver.wait_count(1)
        verify(delivery, secret_of(server.client(tenant.api_key)))
    finally:
        receiver.stop()


def test_the_rate_limit_spaces_the_attempts(server: Server, account: Tenant) -> None:
    receiver = Receiver().start()
    try:
        webhook_endpoint(server, account, receiver.url, eventTypes=["rate.x"], rateLimitPerSecond=5)
        with server.http(account.api_key) as http:
            for n in range(12):
                http.post("/v1/account/webhook_messages", json={"type": "rate.x", "data": {"n": n}})
        arrived = sorted(d.received_at for d in receiver.wait_count(12, timeout=40))
        # Slots 0.2 s apart, booked on the endpoint's row: a late send may bunch with the
        # next, but the whole cannot arrive faster than the rate allows.
        assert arrived[-1] - arrived[0] >= 11 / 5 - 0.3
        assert max(sum(1 for t in arrived if s <= t < s + 1) for s in arrived) <= 7
    finally:
        receiver.stop()


def test_webhook_endpoints_have_a_quota(server: Server) -> None:
    tenant = make_account(server, name="Quota", domain="quota.io")
    headers = {"Authorization": f"Bearer {tenant.api_key}"}
    with (
        server_with(server, max_webhook_endpoints_per_account="2") as base_url,
        httpx.Client(base_url=base_url, headers=headers) as http,
    ):
        for n in range(2):
            add_endpoint(http, f"https://hooks.quota.io/{n}")
        refused = http.post(
            "/v1/account/webhook_endpoints",
            json={"metadata": {"name": "x"}, "spec": {"url": "https://hooks.quota.io/3"}},
        )
        assert refused.status_code == 400 and refused.json()["code"] == 9
        assert "CADENYA_SERVER_MAX_WEBHOOK_ENDPOINTS_PER_ACCOUNT" in refused.text


def test_malformed_ids_in_the_path_are_404(server: Server, account: Tenant) -> None:
    with server.http(account.api_key) as http:
        for path in (
            "/v1/account/webhook_endpoints/whep_nope",
            "/v1/account/webhook_endpoints/endpoint_01M94R3Z96AHVD7SZGCTPRFTR6",
            "/v1/account/webhook_endpoints/whep_nope/deliveries",
            "/v1/account/webhook_messages/msg_%00",
        ):
            response = http.get(path)
            assert response.status_code == 404, (path, response.text)
            assert response.json()["code"] == 5
