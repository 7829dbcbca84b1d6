"""GET /v1/account and its rotations, through the official client and raw HTTP."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime

import pytest
from cadenya import APIError, Cadenya
from cadenya._webhooks import verify_webhook
from standardwebhooks import Webhook

from conftest import Server, Tenant, jwt_for, make_profile
from helpers import METADATA_FIELDS

RFC3339_MS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
ULID = "[0-9A-HJKMNP-TV-Z]{26}"


def test_retrieve_with_the_official_client(server: Server, account: Tenant) -> None:
    got = server.client(account.api_key).accounts.retrieve()
    assert got.metadata.id == account.id
    assert got.metadata.account_id == account.id
    assert got.metadata.profile_id == account.admin_profile_id
    assert got.metadata.name == "Acme"
    assert got.spec.domain == "acme.io"
    assert [w.metadata.id for w in got.spec.workspaces] == [account.workspace_id]
    assert got.spec.workspaces[0].status == "STATUS_ENABLED"
    assert got.info.webhook_events_hmac_secret.startswith("whsec_")
    assert got.info.challenge_token


def test_every_field_of_the_raw_json(server: Server, account: Tenant) -> None:
    body = server.http(account.api_key).get("/v1/account").json()
    assert set(body) == {"metadata", "spec", "info"}
    metadata = body["metadata"]
    assert set(metadata) == METADATA_FIELDS
    assert re.fullmatch(f"account_{ULID}", metadata["id"])
    assert metadata["accountId"] == metadata["id"]
    assert re.fullmatch(f"profile_{ULID}", metadata["profileId"])
    assert metadata["externalId"] == "" and metadata["labels"] == {}
    assert RFC3339_MS.fullmatch(metadata["createdAt"])
    assert body["spec"] == {
        "billingEmail": "",
        "description": "",
        "domain": "acme.io",
        "workspaces": body["spec"]["workspaces"],
    }
    (workspace,) = body["spec"]["workspaces"]
    assert set(workspace) == {"metadata", "spec", "status", "info"}
    assert re.fullmatch(f"workspace_{ULID}", workspace["metadata"]["id"])
    assert set(body["info"]) == {"webhookEventsHmacSecret", "challengeToken"}
    secret = body["info"]["webhookEventsHmacSecret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32


def test_secret_verifies_standard_webhooks_and_the_official_verifier(
    server: Server, account: Tenant
) -> None:
    secret = server.client(account.api_key).accounts.retrieve().info.webhook_events_hmac_secret
    payload = json.dumps({"type": "ping"}).encode()
    msg_id, sent_at = "msg_1", datetime.now(UTC)
    signature = Webhook(secret).sign(msg_id, sent_at, payload.decode())
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signature,
    }
    Webhook(secret).verify(payload, headers)
    verify_webhook(secret, payload, headers)


def test_rotate_webhook_signing_key_both_paths(server: Server, account: Tenant) -> None:
    client = server.client(account.api_key)
    before = client.accounts.retrieve().info.webhook_events_hmac_secret
    rotated = client.accounts.rotate_webhook_signing_key().webhook_events_hmac_secret
    assert rotated.startswith("whsec_") and rotated != before
    assert client.accounts.retrieve().info.webhook_events_hmac_secret == rotated

    response = server.http(account.api_key).post("/v1/account/rotate_webhook_signing_key")
    assert response.status_code == 200
    assert set(response.json()) == {"webhookEventsHmacSecret"}
    seed_path_secret = response.json()["webhookEventsHmacSecret"]
    assert seed_path_secret not in (before, rotated)
    assert client.accounts.retrieve().info.webhook_events_hmac_secret == seed_path_secret


def test_rotate_challenge_token(server: Server, account: Tenant) -> None:
    client = server.client(account.api_key)
    before = client.accounts.retrieve().info.challenge_token
    rotated = client.accounts.rotate_challenge_token().challenge_token
    assert rotated and rotated != before
    assert client.accounts.retrieve().info.challenge_token == rotated


def test_a_member_reads_the_account_without_secrets_and_cannot_rotate(
    server: Server, account: Tenant
) -> None:
    member = make_profile(server, account.id, name="Mia Member", email="mia@acme.io")
    client = Cadenya(api_key=jwt_for(server, member, account.id), base_url=server.base_url)
    got = client.accounts.retrieve()
    assert got.metadata.id == account.id
    assert got.info.webhook_events_hmac_secret == ""
    assert got.info.challenge_token == ""
    for rotate in (
        client.accounts.rotate_webhook_signing_key,
        client.accounts.rotate_challenge_token,
    ):
        with pytest.raises(APIError) as refused:
            rotate()
        assert (refused.value.status_code, refused.value.code) == (403, 7)
    response = server.http(jwt_for(server, member, account.id)).post(
        "/v1/account/rotate_webhook_signing_key"
    )
    assert response.status_code == 403


def test_whoami(server: Server, account: Tenant) -> None:
    admin_jwt = jwt_for(server, account.admin_profile_id, account.id)
    me = server.client(admin_jwt).profiles.whoami()
    assert me.profile.metadata.id == account.admin_profile_id
    assert me.profile.spec.type == "PROFILE_TYPE_USER"
    assert me.default_workspace is not None
    assert me.default_workspace.id == account.workspace_id

    key_me = server.client(account.api_key).profiles.whoami()
    assert key_me.profile.spec.type == "PROFILE_TYPE_API_KEY"
    assert key_me.profile.metadata.account_id == account.id


def test_whoami_lands_a_member_in_a_workspace_they_reach(server: Server, account: Tenant) -> None:
    member = make_profile(server, account.id, name="Wanda Whoami", email="wanda@acme.io")
    member_client = server.client(jwt_for(server, member, account.id))
    nowhere = member_client.profiles.whoami()
    assert nowhere.profile.metadata.id == member
    assert nowhere.default_workspace is not None
    assert nowhere.default_workspace.id == ""

    admin = server.client(account.api_key)
    second = admin.workspace_admin.create(metadata={"name": "Second"}, spec={})
    admin.workspace_admin.add_member(workspace_id=second.metadata.id, profile_id=member)
    landed = member_client.profiles.whoami().default_workspace
    assert landed is not None and landed.id == second.metadata.id
