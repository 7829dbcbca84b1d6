"""Bulk import of profiles from CSV or JSON Lines: idempotent by email, batch by batch.

Each batch is its own transaction, so an interrupted import leaves whole
batches behind and running it again finishes the job.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy import text as sql
from sqlalchemy.orm import Session

from cadenya_server.auth.caller import ROLE_ADMIN, ROLE_MEMBER
from cadenya_server.kit.db import Database
from cadenya_server.kit.errors import ApiError
from cadenya_server.kit.ids import new_id
from cadenya_server.kit.labels import validate as validate_labels
from cadenya_server.models import Account, Profile, ProfileLabel
from cadenya_server.profiles import index, text

BATCH = 2000
TYPES = {"user": "user", "api_key": "api_key", "system": "system"}
ROLES = (ROLE_ADMIN, ROLE_MEMBER)

Record = dict[str, Any]


class ImportAborted(Exception):
    """The import cannot start (no such account, unreadable file)."""


@dataclass
class ImportReport:
    inserted: int = 0
    updated: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


def read_file(path: Path) -> Iterator[tuple[int, Record | str]]:
    """(line number, record) per data row; a str in place of the record says why it is bad."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        first = handle.read(1)
        handle.seek(0)
        if path.suffix.lower() in (".jsonl", ".ndjson", ".json") or first == "{":
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield number, f"not valid JSON: {exc.msg}"
                    continue
                yield number, record if isinstance(record, dict) else "not a JSON object"
            return
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"name", "email"} <= set(reader.fieldnames):
            raise ImportAborted("the CSV header must name at least the columns name and email")
        for row in reader:
            record: Record = {k: v for k, v in row.items() if k is not None and v not in (None, "")}
            if isinstance(record.get("labels"), str):
                record["labels"] = _csv_labels(record["labels"])
            yield reader.line_num, record


def _csv_labels(value: str) -> dict[str, str] | str:
    labels: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in value.split(";"))):
        key, eq, label = pair.partition("=")
        if not eq:
            return f"label {pair!r} is not key=value"
        labels[key.strip()] = label.strip()
    return labels


def count_rows(path: Path) -> int:
    """Roughly how many records the file has (for a progress bar)."""
    with path.open("rb") as handle:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    return max(lines, 1)


def _clean(record: Record) -> Record:
    """A profile row from a record, or InvalidArgument."""
    kind = str(record.get("type") or "").lower()
    role = str(record.get("role") or "").lower()
    if kind and kind not in TYPES:
        raise ValueError(f"type {kind!r} is not one of user, api_key, system")
    if role and role not in ROLES:
        raise ValueError(f"role {role!r} is not one of admin, member")
    name = text.clean_name(str(record.get("name") or ""), field="name")
    email = text.clean_email(str(record.get("email") or ""), field="email")
    labels = record.get("labels") or {}
    if isinstance(labels, str):
        raise ValueError(labels)
    labels = validate_labels(labels, field="labels")
    external_id = str(record.get("externalId") or record.get("external_id") or "")
    if len(external_id) > 200:
        raise ValueError("externalId is longer than 200 characters")
    row: Record = {
        "name": name,
        "email": email,
        "email_key": text.email_key(email),
        "name_key": text.name_key(name),
        "search_text": text.search_text(name, email),
        "labels": labels,
        "external_id": external_id,
    }
    # A type or role the record leaves out keeps what an existing profile has, so
    # re-importing a plain list of names never demotes an administrator.
    if kind:
        row["type"] = TYPES[kind]
    if role or kind not in ("", "user"):
        row["role"] = role if kind in ("", "user") else ROLE_MEMBER
    return row


def import_records(
    *,
    db: Database,
    account_id: str,
    records: Iterable[tuple[int, Record | str]],
    on_progress: Callable[[int], None] = lambda _n: None,
) -> ImportReport:
    """Insert or update (by email) every good record; report the bad ones by line."""
    with db.transaction(write=False) as session:
        account = session.get(Account, account_id)
        if account is None:
            raise ImportAborted(f"no account {account_id}")
        creator = account.creator_profile_id
    report = ImportReport()
    batch: dict[str, Record] = {}
    batches = 0
    for number, record in records:
        try:
            if isinstance(record, str):
                raise ValueError(record)
            row = _clean(record)
        except (ValueError, ApiError) as exc:
            report.errors.append((number, getattr(exc, "message", None) or str(exc)))
            on_progress(1)
            continue
        # The same email twice in a batch: the later line wins, as it would across batches.
        batch[row["email_key"]] = row
        if len(batch) >= BATCH:
            _write_batch(db, account_id, creator, batch, report)
            on_progress(len(batch))
            batch = {}
            batches += 1
            if batches & (batches - 1) == 0:
                _refresh_statistics(db)
    if batch:
        _write_batch(db, account_id, creator, batch, report)
        on_progress(len(batch))
    return report


def _write_batch(
    db: Database, account_id: str, creator: str, batch: dict[str, Record], report: ImportReport
) -> None:
    with (
        db.transaction() as session,
        index.bulk_index(session, account_id=account_id) as bulk,
    ):
        # By email: (id, type, name_key, search_text), what the search index holds of it.
        indexed = (Profile.id, Profile.type, Profile.name_key, Profile.search_text)
        existing = {
            key: tuple(columns)
            for key, *columns in session.execute(
                select(Profile.email_key, *indexed).where(
                    Profile.account_id == account_id, Profile.email_key.in_(list(batch))
                )
            )
        }
        new_rows, changed_rows = [], []
        for key, row in batch.items():
            if key in existing:
                changed_rows.append({"id": existing[key][0], "type": existing[key][1], **row})
            else:
                new_rows.append(
                    {
                        "id": new_id("profile"),
                        "account_id": account_id,
                        "creator_profile_id": creator,
                        "type": "user",
                        "role": ROLE_MEMBER,
                        **row,
                    }
                )
        bulk.replacing([existing[r["email_key"]] for r in changed_rows])
        if new_rows:
            session.execute(insert(Profile), new_rows)
        if changed_rows:
            session.execute(update(Profile), changed_rows)
            _delete_labels(session, [r["id"] for r in changed_rows])
        bulk.written(
            [
                (r["id"], r["type"], r["name_key"], r["search_text"])
                for r in (*new_rows, *changed_rows)
            ]
        )
        label_rows = [
            {"profile_id": r["id"], "account_id": account_id, "key": k, "value": v}
            for r in (*new_rows, *changed_rows)
            for k, v in r["labels"].items()
        ]
        if label_rows:
            session.execute(insert(ProfileLabel), label_rows)
    report.inserted += len(new_rows)
    report.updated += len(changed_rows)


def _refresh_statistics(db: Database) -> None:
    """Fresh PostgreSQL planner statistics for the profiles table."""
    # A bulk load outruns autovacuum. While the statistics still see the account as
    # small, PostgreSQL plans each batch's email lookup as a scan of the whole
    # account, so every batch is slower than the last (100k rows: 3 minutes instead
    # of 25 s). Refreshed after batches 1, 2, 4, 8, … they stay within a factor of
    # two of the truth for a handful of ANALYZEs.
    if db.dialect == "postgresql":
        with db.transaction() as session:
            session.execute(sql("ANALYZE profiles"))


def _delete_labels(session: Session, profile_ids: list[str]) -> None:
    session.execute(delete(ProfileLabel).where(ProfileLabel.profile_id.in_(profile_ids)))
