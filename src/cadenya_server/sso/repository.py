"""Every query of SSO: connections, their domains, linked identities, sign-ins under way."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cadenya_server.models import SsoConnection, SsoDomain, SsoIdentity, SsoLogin


def page(
    session: Session, *, account_id: str, after: str | None, limit: int
) -> list[SsoConnection]:
    """Up to `limit` of the account's connections in id (creation) order, after `after`."""
    statement = select(SsoConnection).where(SsoConnection.account_id == account_id)
    if after is not None:
        statement = statement.where(SsoConnection.id > after)
    return list(session.scalars(statement.order_by(SsoConnection.id).limit(limit)))


def count(session: Session, *, account_id: str) -> int:
    return session.scalar(
        select(func.count())
        .select_from(SsoConnection)
        .where(SsoConnection.account_id == account_id)
    )


def get(session: Session, *, account_id: str, connection_id: str) -> SsoConnection | None:
    """A connection of this account, or None (also for another account's id)."""
    return session.scalars(
        select(SsoConnection).where(
            SsoConnection.id == connection_id, SsoConnection.account_id == account_id
        )
    ).one_or_none()


def by_id(session: Session, connection_id: str) -> SsoConnection | None:
    """A connection of any account: a sign-in names its connection before anyone is known."""
    return session.get(SsoConnection, connection_id)


def by_domain(session: Session, domain: str) -> SsoConnection | None:
    """The connection whose sign-in starts for this email domain, or None."""
    return session.scalars(
        select(SsoConnection).join(SsoDomain).where(SsoDomain.domain == domain)
    ).one_or_none()


def save(session: Session, connection: SsoConnection) -> bool:
    """Insert or update the connection and set its domains; False, and nothing written,
    when a domain or its (issuer, audience) for tokens is another connection's."""
    try:
        # A savepoint keeps the request's transaction usable after a conflict, which the
        # unique indexes catch also when two writes race.
        with session.begin_nested():
            session.add(connection)
            session.flush()
            session.execute(delete(SsoDomain).where(SsoDomain.connection_id == connection.id))
            session.add_all(
                SsoDomain(domain=d, connection_id=connection.id, account_id=connection.account_id)
                for d in connection.allowed_email_domains
            )
    except IntegrityError:
        return False
    return True


def remove(session: Session, connection: SsoConnection) -> None:
    session.delete(connection)


def identity_profile(session: Session, *, connection_id: str, subject: str) -> str | None:
    """The profile linked to this subject at this connection, or None."""
    return session.scalar(
        select(SsoIdentity.profile_id).where(
            SsoIdentity.connection_id == connection_id, SsoIdentity.subject == subject
        )
    )


def subject_of(session: Session, *, connection_id: str, profile_id: str) -> str | None:
    """The subject this profile is linked to at this connection, or None."""
    return session.scalar(
        select(SsoIdentity.subject).where(
            SsoIdentity.connection_id == connection_id, SsoIdentity.profile_id == profile_id
        )
    )


def link(
    session: Session, *, connection_id: str, subject: str, account_id: str, profile_id: str
) -> None:
    session.add(
        SsoIdentity(
            connection_id=connection_id,
            subject=subject,
            account_id=account_id,
            profile_id=profile_id,
        )
    )
    session.flush()


def add_login(session: Session, login: SsoLogin) -> None:
    session.add(login)


def take_login(session: Session, state_hash: str) -> SsoLogin | None:
    """The sign-in under way with this state, removed so that no one can use it again."""
    login = session.get(SsoLogin, state_hash)
    if login is None:
        return None
    # Counted, not assumed: of two callbacks racing with one state, only one deletes it.
    deleted = session.execute(delete(SsoLogin).where(SsoLogin.state_hash == state_hash))
    return login if deleted.rowcount == 1 else None


def purge_logins(session: Session, *, before: datetime) -> None:
    """Forget sign-ins that were started and never finished."""
    session.execute(delete(SsoLogin).where(SsoLogin.expires_at < before))
