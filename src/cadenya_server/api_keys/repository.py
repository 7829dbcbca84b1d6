"""Every query of API keys and their workspace assignments."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice

from sqlalchemy import ColumnElement, Select, delete, func, or_, select
from sqlalchemy.orm import Session

from cadenya_server.models import ApiKey, ApiKeyWorkspace


@dataclass(frozen=True)
class KeyFilter:
    """Which keys of an account a listing shows; `needle` and `prefix` are lower-cased."""

    account_id: str
    workspace_id: str | None = None
    needle: str = ""
    prefix: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    descending: bool = False

    def matches_text(self, key: ApiKey) -> bool:
        name = key.name.lower()
        return name.startswith(self.prefix) and (
            self.needle in name or self.needle in key.description.lower()
        )


def get(
    session: Session, *, account_id: str, api_key_id: str, for_update: bool = False
) -> ApiKey | None:
    """A key of this account, or None (also for another account's id).

    `for_update` row-locks it until the transaction ends (PostgreSQL; SQLite
    already holds the database write lock for a writing request).
    """
    statement = select(ApiKey).where(ApiKey.id == api_key_id, ApiKey.account_id == account_id)
    if for_update:
        statement = statement.with_for_update()
    return session.scalars(statement).one_or_none()


def _statement(where: KeyFilter) -> Select[tuple[ApiKey]]:
    statement = select(ApiKey).where(ApiKey.account_id == where.account_id)
    if where.workspace_id is not None:
        assigned = select(ApiKeyWorkspace.api_key_id).where(
            ApiKeyWorkspace.workspace_id == where.workspace_id
        )
        statement = statement.where(or_(ApiKey.all_workspaces, ApiKey.id.in_(assigned)))
    label_matches: list[ColumnElement[bool]] = [
        ApiKey.labels[key].as_string() == value for key, value in where.labels.items()
    ]
    return statement.where(*label_matches)


def _text_matches(
    session: Session, statement: Select[tuple[ApiKey]], where: KeyFilter
) -> Iterator[ApiKey]:
    # Substrings are matched in Python, on str.lower(), so both databases agree
    # on non-ASCII text; an account holds few keys, and rows stream in batches.
    rows = session.scalars(statement.execution_options(yield_per=500))
    return (key for key in rows if where.matches_text(key))


def page(session: Session, where: KeyFilter, *, after: str | None, limit: int) -> list[ApiKey]:
    """Up to `limit` matches in id (creation) order, starting after the id `after`."""
    statement = _statement(where)
    if after is not None:
        statement = statement.where(ApiKey.id < after if where.descending else ApiKey.id > after)
    statement = statement.order_by(ApiKey.id.desc() if where.descending else ApiKey.id)
    if not (where.needle or where.prefix):
        return list(session.scalars(statement.limit(limit)))
    return list(islice(_text_matches(session, statement, where), limit))


def count(session: Session, where: KeyFilter) -> int:
    """How many keys match."""
    statement = _statement(where)
    if not (where.needle or where.prefix):
        return session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    return sum(1 for _ in _text_matches(session, statement, where))


def assigned_workspace_ids(session: Session, api_key_ids: Iterable[str]) -> dict[str, list[str]]:
    """The workspaces each key is assigned to, oldest assignment first."""
    assigned: dict[str, list[str]] = {}
    rows = session.execute(
        select(ApiKeyWorkspace.api_key_id, ApiKeyWorkspace.workspace_id)
        .where(ApiKeyWorkspace.api_key_id.in_(list(api_key_ids)))
        .order_by(ApiKeyWorkspace.created_at, ApiKeyWorkspace.workspace_id)
    )
    for api_key_id, workspace_id in rows:
        assigned.setdefault(api_key_id, []).append(workspace_id)
    return assigned


def assign(session: Session, key: ApiKey, workspace_ids: Iterable[str]) -> None:
    """Add assignments; ones the key already has are kept as they are."""
    held = set(assigned_workspace_ids(session, [key.id]).get(key.id, []))
    for workspace_id in workspace_ids:
        if workspace_id not in held:
            held.add(workspace_id)
            session.add(
                ApiKeyWorkspace(
                    api_key_id=key.id, workspace_id=workspace_id, account_id=key.account_id
                )
            )
    session.flush()


def unassign(session: Session, key: ApiKey, workspace_ids: Iterable[str] | None = None) -> None:
    """Remove these assignments of the key (None: all of them)."""
    statement = delete(ApiKeyWorkspace).where(ApiKeyWorkspace.api_key_id == key.id)
    if workspace_ids is not None:
        statement = statement.where(ApiKeyWorkspace.workspace_id.in_(list(workspace_ids)))
    session.execute(statement)


def remove(session: Session, key: ApiKey) -> None:
    """Delete the key (its assignments go with it)."""
    session.delete(key)
    session.flush()
