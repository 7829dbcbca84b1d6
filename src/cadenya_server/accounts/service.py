"""Accounts: creation with a first administrator, reading, and secret rotation."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass

from sqlalchemy.orm import Session

from cadenya_server.accounts import repository
from cadenya_server.accounts.schemas import Account, AccountInfo, AccountSpec
from cadenya_server.api_keys import service as api_keys
from cadenya_server.audit import service as audit
from cadenya_server.auth import scopes
from cadenya_server.auth.caller import ROLE_ADMIN, Caller
from cadenya_server.kit.clock import rfc3339
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


def read(*, session: Session, keyring: Keyring, caller: Caller) -> Account:
    """The caller's account; its secrets only for administrators."""
    row = repository.get(session, caller.account_id)
    if row is None:
        raise NotFound("account not found")
    stored = repository.secrets_of(session, row.id)

    def reveal(name: str) -> str:
        return keyring.decrypt(stored[name], context=f"{row.id}/{name}") if name in stored else ""

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
        # Both secrets are for administrators; other callers see "".
        info=AccountInfo(
            webhook_events_hmac_secret=reveal(repository.WEBHOOK_SECRET) if caller.is_admin else "",
            challenge_token=reveal(repository.CHALLENGE_TOKEN) if caller.is_admin else "",
        ),
    )


def rotate_webhook_secret(*, session: Session, keyring: Keyring, caller: Caller) -> str:
    """A new webhook signing secret; the old one stops signing when this commits."""
    return _rotate(
        session,
        keyring,
        caller,
        name=repository.WEBHOOK_SECRET,
        value=new_webhook_secret(),
        action="account.rotate_webhook_signing_key",
    )


def rotate_challenge_token(*, session: Session, keyring: Keyring, caller: Caller) -> str:
    """A new challenge token; the old one stops answering when this commits."""
    return _rotate(
        session,
        keyring,
        caller,
        name=repository.CHALLENGE_TOKEN,
        value=new_challenge_token(),
        action="account.rotate_challenge_token",
    )


def _rotate(
    session: Session, keyring: Keyring, caller: Caller, *, name: str, value: str, action: str
) -> str:
    """Replace one of the account's secrets, audited; the new value, this once."""
    _store_secret(session, keyring, account_id=caller.account_id, name=name, value=value)
    audit.record(session, caller=caller, action=action, resource_id=caller.account_id)
    return value
