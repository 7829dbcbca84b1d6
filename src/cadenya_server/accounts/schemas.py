"""Accounts on the wire."""

from __future__ import annotations

from cadenya_server.kit.schemas import AccountResourceMetadata, WireModel
from cadenya_server.workspaces.schemas import Workspace


class AccountSpec(WireModel):
    billing_email: str = ""
    description: str = ""
    domain: str = ""
    workspaces: list[Workspace] = []


class AccountInfo(WireModel):
    webhook_events_hmac_secret: str = ""
    challenge_token: str = ""


class Account(WireModel):
    metadata: AccountResourceMetadata
    spec: AccountSpec
    info: AccountInfo


class RotateWebhookSigningKeyResponse(WireModel):
    webhook_events_hmac_secret: str


class RotateChallengeTokenResponse(WireModel):
    challenge_token: str
