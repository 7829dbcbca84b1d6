"""Every query of accounts and their secrets."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from cadenya_server.models import Account, AccountSecret

WEBHOOK_SECRET = "webhook_events_hmac_secret"
CHALLENGE_TOKEN = "challenge_token"
# The secret a rotation replaced, signing beside the new one until its expiry.
PREVIOUS_WEBHOOK_SECRET = "webhook_events_hmac_secret_previous"


def get(session: Session, account_id: str) -> Account | None:
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
