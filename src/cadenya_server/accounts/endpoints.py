"""/v1/account: the caller's account and its rotations."""

from __future__ import annotations

from fastapi import APIRouter

from cadenya_server.accounts import service
from cadenya_server.accounts.schemas import (
    Account,
    RotateChallengeTokenResponse,
    RotateWebhookSigningKeyResponse,
)
from cadenya_server.auth.dependencies import AdminCaller, AnyCaller
from cadenya_server.kit.params import NoBody
from cadenya_server.kit.runtime import AppRuntime, DbSession

router = APIRouter(prefix="/v1", tags=["Account"])


@router.get("/account", operation_id="accounts.retrieve")
def get_account(caller: AnyCaller, session: DbSession, runtime: AppRuntime) -> Account:
    """Retrieves the current account for the token accessing the API."""
    return service.read(session=session, keyring=runtime.keyring, caller=caller)


@router.post(
    "/account/rotate_webhook_signing_key",
    operation_id="accounts.rotateWebhookSigningKey",
)
@router.post(
    "/account:rotateWebhookSigningKey",
    operation_id="accounts.rotateWebhookSigningKeyAlias",
    description="The same call at the path the official Python client uses.",
)
def rotate_webhook_signing_key(
    caller: AdminCaller, session: DbSession, runtime: AppRuntime, _body: NoBody = None
) -> RotateWebhookSigningKeyResponse:
    """Rotates the webhook signing key for the account. Administrators only."""
    secret = service.rotate_webhook_secret(session=session, keyring=runtime.keyring, caller=caller)
    return RotateWebhookSigningKeyResponse(webhook_events_hmac_secret=secret)


@router.post("/account:rotateChallengeToken", operation_id="accounts.rotateChallengeToken")
def rotate_challenge_token(
    caller: AdminCaller, session: DbSession, runtime: AppRuntime, _body: NoBody = None
) -> RotateChallengeTokenResponse:
    """Rotates the challenge token for the account. Administrators only."""
    token = service.rotate_challenge_token(session=session, keyring=runtime.keyring, caller=caller)
    return RotateChallengeTokenResponse(challenge_token=token)
