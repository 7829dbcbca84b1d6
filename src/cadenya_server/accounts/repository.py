"""Every query of accounts and their secrets."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, bindparam, select
from sqlalchemy.orm import Session

from cadenya_server.models import Account, AccountSecret

WEBHOOK_SECRET = "webhook_events_hmac_secret"
CHALLENGE_TOKEN = "challenge_token"
# The secret a rotation replaced, signing beside the new one until its expiry.
PREVIOUS_WEBHOOK_SECRET = "webhook_events_hmac_secret_previous"


# Read on every GET /v1/account: built once, one statement for the account and its
# secrets, read as plain rows rather than loaded into the session (see bench/README.md).
_ACCOUNTS = Account.__table__
_SECRETS = AccountSecret.__table__
_ACCOUNT_WITH_SECRETS = (
    select(_ACCOUNTS, _SECRETS.c.name.label("secret_name"), _SECRETS.c.ciphertext)
    .select_from(_ACCOUNTS.outerjoin(_SECRETS))
    .where(_ACCOUNTS.c.id == bindparam("account_id"))
)


def get_with_secrets(session: Session, account_id: str) -> tuple[Row[Any], dict[str, str]] | None:
    """The account's columns and its secrets by name (still encrypted), or None."""
    rows = session.execute(_ACCOUNT_WITH_SECRETS, {"account_id": account_id}).all()
    if not rows:
        return None
    return rows[0], {row.secret_name: row.ciphertext for row in rows if row.secret_name}


def get(session: Session, account_id: str) -> Account | None:
    """The account, loaded to be changed."""
    return session.get(Account, account_id)


def secrets_of(session: Session, account_id: str) -> dict[str, str]:
    """The account's secrets by name, still encrypted."""
    rows = session.scalars(select(AccountSecret).where(AccountSecret.account_id == account_id))
    return {row.name: row.ciphertext for row in rows}


def put_secret(session: Session, *, account_id: str, name: str, ciphertext: str) -> None:
    row = session.get(AccountSecret, (account_id, name))
    if row is None:
        session.add(AccountSecret(account_id=account_id, name=name, ciphertext=ciphertext))
    else:
        row.ciphertext = ciphertext


def drop_secret(session: Session, *, account_id: str, name: str) -> None:
    row = session.get(AccountSecret, (account_id, name))
    if row is not None:
        session.delete(row)
