"""Accounts on the wire."""

from __future__ import annotations

from pydantic import Field

from cadenya_server.kit.schemas import AccountResourceMetadata, RequestModel, WireModel
from cadenya_server.workspaces.schemas import Workspace


class AccountSpec(WireModel):
    billing_email: str = ""
    description: str = ""
    domain: str = ""
    workspaces: list[Workspace] = []


class AccountInfo(WireModel):
    webhook_events_hmac_secret: str = ""
    challenge_token: str = ""
    previous_secret_expires_at: str = Field(
        "",
        description="Until then the secret a rotation replaced signs every webhook beside "
        'the new one; "" when no grace window is open.',
    )


class Account(WireModel):
    metadata: AccountResourceMetadata
    spec: AccountSpec
    info: AccountInfo


class RotateWebhookSigningKeyRequest(RequestModel):
    grace_period_seconds: int | None = Field(
        None,
        ge=0,
        le=30 * 86400,
        description="How long the old secret keeps signing beside the new one; 0 stops it "
        "at once. Absent: the server's default (CADENYA_SERVER_WEBHOOK_ROTATION_GRACE_SECONDS).",
    )


class RotateWebhookSigningKeyResponse(WireModel):
    webhook_events_hmac_secret: str
    previous_secret_expires_at: str = ""


class RotateChallengeTokenResponse(WireModel):
    challenge_token: str
