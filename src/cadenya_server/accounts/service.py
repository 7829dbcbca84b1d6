"""Accounts: creation with a first administrator, reading, and secret rotation."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from cadenya_server.accounts import repository
from cadenya_server.accounts.schemas import Account, AccountInfo, AccountSpec
from cadenya_server.api_keys import service as api_keys
from cadenya_server.audit import service as audit
from cadenya_server.auth import scopes
from cadenya_server.auth.caller import ROLE_ADMIN, Caller
from cadenya_server.kit.clock import as_utc, now, rfc3339
from cadenya_server.kit.crypto import Keyring
from cadenya_server.kit.errors import InvalidArgument, NotFound
from cadenya_server.kit.ids import new_id
from cadenya_server.kit.schemas import AccountResourceMetadata
from cadenya_server.models import Account as AccountRow
from cadenya_server.models import Profile as ProfileRow
from cadenya_server.profiles import service as profiles
from cadenya_server.profiles import text
from cadenya_server.workspaces import service as workspaces
from cadenya_server.workspaces.schemas import Workspace


@dataclass(frozen=True)
class CreatedAccount:
    account: AccountRow
    admin: ProfileRow
    workspace_id: str
    api_key_id: str
    api_key: str


def new_webhook_secret() -> str:
    """A Standard Webhooks symmetric secret: `whsec_` + base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def new_challenge_token() -> str:
    return secrets.token_urlsafe(32)


def create(
    *,
    session: Session,
    keyring: Keyring,
    name: str,
    domain: str,
    admin_email: str,
    admin_name: str,
) -> CreatedAccount:
    """An account with its first administrator, a default workspace and an admin API key."""
    name = name.strip()
    if not name or len(name) > text.MAX_NAME or text.has_control(name):
        raise InvalidArgument.field("name", "1-200 characters without control characters")
    account = AccountRow(id=new_id("account"), name=name, domain=domain.strip().lower())
    session.add(account)
    session.flush()
    admin = profiles.add_row(
        session=session,
        account_id=account.id,
        type="user",
        role=ROLE_ADMIN,
        name=text.clean_name(admin_name, field="admin_name"),
        email=text.clean_email(admin_email, field="admin_email"),
    )
    admin.creator_profile_id = admin.id
    account.creator_profile_id = admin.id
    workspace = workspaces.add_row(
        session=session, account_id=account.id, name="Default", creator_profile_id=admin.id
    )
    for secret_name, value in (
        (repository.WEBHOOK_SECRET, new_webhook_secret()),
        (repository.CHALLENGE_TOKEN, new_challenge_token()),
    ):
        _store_secret(session, keyring, account_id=account.id, name=secret_name, value=value)
    issued = api_keys.issue(
        session=session,
        keyring=keyring,
        account_id=account.id,
        name=f"{admin.name or admin.email} (admin key)",
        permissions=[scopes.ALL],
        creator_profile_id=admin.id,
        all_workspaces=True,
        is_default=True,
    )
    return CreatedAccount(
        account=account,
        admin=admin,
        workspace_id=workspace.id,
        api_key_id=issued.key.id,
        api_key=issued.token,
    )


def _store_secret(
    session: Session, keyring: Keyring, *, account_id: str, name: str, value: str
) -> None:
    ciphertext = keyring.encrypt(value, context=f"{account_id}/{name}")
    repository.put_secret(session, account_id=account_id, name=name, ciphertext=ciphertext)


def _render(
    session: Session,
    keyring: Keyring,
    row: AccountRow | Row[Any],
    stored: dict[str, str],
    *,
    secrets: bool,
) -> Account:
    """The account on the wire; its secrets (`stored`, encrypted) only with `secrets`."""

    def reveal(name: str) -> str:
        if not secrets or name not in stored:
            return ""
        return keyring.decrypt(stored[name], context=f"{row.id}/{name}")

    return Account(
        metadata=AccountResourceMetadata(
            id=row.id,
            account_id=row.id,
            name=row.name,
            profile_id=row.creator_profile_id,
            external_id=row.external_id,
            labels=row.labels,
            created_at=rfc3339(row.created_at),
        ),
        spec=AccountSpec(
            billing_email=row.billing_email,
            description=row.description,
            domain=row.domain,
            workspaces=[
                Workspace.of(w) for w in workspaces.active_rows(session=session, account_id=row.id)
            ],
        ),
        info=AccountInfo(
            webhook_events_hmac_secret=reveal(repository.WEBHOOK_SECRET),
            challenge_token=reveal(repository.CHALLENGE_TOKEN),
            previous_secret_expires_at=rfc3339(_previous_expiry(row)),
        ),
    )


def _previous_expiry(row: AccountRow) -> datetime | None:
    expires = row.previous_webhook_secret_expires_at
    if expires is None or as_utc(expires) <= now():
        return None
    return as_utc(expires)


def _find(session: Session, account_id: str) -> AccountRow:
    row = repository.get(session, account_id)
    if row is None:
        raise NotFound("account not found")
    return row


def read(*, session: Session, keyring: Keyring, caller: Caller) -> Account:
    """The caller's account; its secrets only for administrators (others get "")."""
    found = repository.get_with_secrets(session, caller.account_id)
    if found is None:
        raise NotFound("account not found")
    row, stored = found
    return _render(session, keyring, row, stored, secrets=caller.is_admin)


def _audit_change(
    session: Session, keyring: Keyring, caller: Caller, row: AccountRow, action: str
) -> None:
    # The event carries the account as an administrator reads it, less its secrets.
    audit.record(
        session,
        caller=caller,
        action=action,
        resource_id=row.id,
        resource=_render(session, keyring, row, {}, secrets=False),
    )


@dataclass(frozen=True)
class Rotation:
    secret: str
    previous_expires_at: datetime | None


def rotate_webhook_secret(
    *, session: Session, keyring: Keyring, caller: Caller, grace_seconds: int
) -> Rotation:
    """A new webhook signing secret. The old one keeps signing beside it for
    `grace_seconds` (0: it stops when this commits)."""
    row = _find(session, caller.account_id)
    stored = repository.secrets_of(session, row.id)
    secret = new_webhook_secret()
    _store_secret(session, keyring, account_id=row.id, name=repository.WEBHOOK_SECRET, value=secret)
    old = stored.get(repository.WEBHOOK_SECRET)
    if grace_seconds > 0 and old is not None:
        previous = keyring.decrypt(old, context=f"{row.id}/{repository.WEBHOOK_SECRET}")
        _store_secret(
            session,
            keyring,
            account_id=row.id,
            name=repository.PREVIOUS_WEBHOOK_SECRET,
            value=previous,
        )
        row.previous_webhook_secret_expires_at = now() + timedelta(seconds=grace_seconds)
    else:
        _drop_previous(session, row)
    _audit_change(session, keyring, caller, row, "account.rotate_webhook_signing_key")
    return Rotation(secret=secret, previous_expires_at=_previous_expiry(row))


def _drop_previous(session: Session, row: AccountRow) -> None:
    repository.drop_secret(session, account_id=row.id, name=repository.PREVIOUS_WEBHOOK_SECRET)
    row.previous_webhook_secret_expires_at = None


def expire_previous_webhook_secret(
    *, session: Session, keyring: Keyring, caller: Caller
) -> Account:
    """End a rotation's grace window now: only the current secret signs from the commit on."""
    row = _find(session, caller.account_id)
    was_open = _previous_expiry(row) is not None
    _drop_previous(session, row)
    if was_open:
        _audit_change(session, keyring, caller, row, "account.expire_previous_webhook_signing_key")
    return _render(session, keyring, row, repository.secrets_of(session, row.id), secrets=True)


def signing_secrets(*, session: Session, keyring: Keyring, account_id: str) -> list[str]:
    """The secrets that sign the account's webhooks now: the current one first, then the
    previous one while its grace window is open."""
    found = repository.get_with_secrets(session, account_id)
    if found is None:
        return []
    row, stored = found
    names = [repository.WEBHOOK_SECRET]
    if _previous_expiry(row) is not None:
        names.append(repository.PREVIOUS_WEBHOOK_SECRET)
    return [
        keyring.decrypt(stored[name], context=f"{account_id}/{name}")
        for name in names
        if name in stored
    ]


def rotate_challenge_token(*, session: Session, keyring: Keyring, caller: Caller) -> str:
    """A new challenge token; the old one stops answering when this commits."""
    token = new_challenge_token()
    _store_secret(
        session, keyring, account_id=caller.account_id, name=repository.CHALLENGE_TOKEN, value=token
    )
    _audit_change(
        session,
        keyring,
        caller,
        _find(session, caller.account_id),
        "account.rotate_challenge_token",
    )
    return token
