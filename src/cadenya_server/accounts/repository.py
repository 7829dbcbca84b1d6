"""Every query of accounts and their secrets."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, bindparam, select
from sqlalchemy.orm import Session

from cadenya_server.models import Account, AccountSecret

WEBHOOK_SECRET = "webhook_events_hmac_secret"
CHALLENGE_TOKEN = "challenge_token"


# Read on every GET /v1/account: built once, and read as plain rows of the tables
# rather than loaded into the session as instances (see bench/README.md).
_ACCOUNT = select(Account.__table__).where(Account.__table__.c.id == bindparam("account_id"))
_SECRETS = select(AccountSecret.__table__.c.name, AccountSecret.__table__.c.ciphertext).where(
    AccountSecret.__table__.c.account_id == bindparam("account_id")
)


def get(session: Session, account_id: str) -> Row[Any] | None:
    """The account's columns, or None."""
    return session.execute(_ACCOUNT, {"account_id": account_id}).one_or_none()


def secrets_of(session: Session, account_id: str) -> dict[str, str]:
    """The account's secrets by name, still encrypted."""
    return dict(session.execute(_SECRETS, {"account_id": account_id}).all())


def put_secret(session: Session, *, account_id: str, name: str, ciphertext: str) -> None:
    row = session.get(AccountSecret, (account_id, name))
    if row is None:
        session.add(AccountSecret(account_id=account_id, name=name, ciphertext=ciphertext))
    else:
        row.ciphertext = ciphertext
