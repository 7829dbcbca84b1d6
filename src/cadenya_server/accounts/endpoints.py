"""/v1/account: the caller's account and its rotations."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Response
from sqlalchemy.orm import Session

from cadenya_server.accounts import service
from cadenya_server.accounts.schemas import (
    Account,
    RotateChallengeTokenResponse,
    RotateWebhookSigningKeyRequest,
    RotateWebhookSigningKeyResponse,
)
from cadenya_server.auth.dependencies import AdminCaller, AnyCredentials
from cadenya_server.kit.clock import rfc3339
from cadenya_server.kit.params import NoBody
from cadenya_server.kit.runtime import AppRuntime, DbSession

router = APIRouter(prefix="/v1", tags=["Account"])


@router.get("/account", operation_id="accounts.retrieve", response_model=Account)
async def get_account(presented: AnyCredentials, runtime: AppRuntime) -> Response:
    """Retrieves the current account for the token accessing the API."""

    # Against the house's conventions on purpose, as the profile search: every product
    # in front of this server calls it, so the caller, the account and its JSON take
    # one trip to the thread pool instead of five (bench/README.md).
    def read(session: Session) -> bytes:
        caller = presented.caller(session=session, runtime=runtime)
        account = service.read(session=session, keyring=runtime.keyring, caller=caller)
        return account.model_dump_json(by_alias=True).encode()

    body = await runtime.db.run(read, write=False, statements_alone=True)
    return Response(body, media_type="application/json")


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
    caller: AdminCaller,
    session: DbSession,
    runtime: AppRuntime,
    body: Annotated[RotateWebhookSigningKeyRequest | None, Body()] = None,
) -> RotateWebhookSigningKeyResponse:
    """Rotates the webhook signing key for the account. Administrators only. The old key
    keeps signing beside the new one for `gracePeriodSeconds` (default: the server's
    setting, a day), so receivers can switch without missing a delivery."""
    grace = body.grace_period_seconds if body is not None else None
    rotation = service.rotate_webhook_secret(
        session=session,
        keyring=runtime.keyring,
        caller=caller,
        grace_seconds=runtime.settings.webhooks.rotation_grace_seconds if grace is None else grace,
    )
    return RotateWebhookSigningKeyResponse(
        webhook_events_hmac_secret=rotation.secret,
        previous_secret_expires_at=rfc3339(rotation.previous_expires_at),
    )


@router.post(
    "/account:expirePreviousWebhookSigningKey",
    operation_id="accounts.expirePreviousWebhookSigningKey",
)
def expire_previous_webhook_signing_key(
    caller: AdminCaller, session: DbSession, runtime: AppRuntime, _body: NoBody = None
) -> Account:
    """Ends a rotation's grace window now: from then on only the current key signs."""
    return service.expire_previous_webhook_secret(
        session=session, keyring=runtime.keyring, caller=caller
    )


@router.post("/account:rotateChallengeToken", operation_id="accounts.rotateChallengeToken")
def rotate_challenge_token(
    caller: AdminCaller, session: DbSession, runtime: AppRuntime, _body: NoBody = None
) -> RotateChallengeTokenResponse:
    """Rotates the challenge token for the account. Administrators only."""
    token = service.rotate_challenge_token(session=session, keyring=runtime.keyring, caller=caller)
    return RotateChallengeTokenResponse(challenge_token=token)
