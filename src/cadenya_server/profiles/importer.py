"""Bulk import of profiles from CSV or JSON Lines: idempotent by email, batch by batch.

Each batch is its own transaction, so an interrupted import leaves whole
batches behind and running it again finishes the job.
"""

from __future__ import annotations

import csv
import ctypes
import gc
import json
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cadenya_server import outbox
from cadenya_server.auth.caller import ROLE_ADMIN, ROLE_MEMBER
from cadenya_server.kit.clock import now
from cadenya_server.kit.db import Database
from cadenya_server.kit.errors import ApiError
from cadenya_server.kit.ids import new_ids
from cadenya_server.kit.labels import validate as validate_labels
from cadenya_server.models import Account, Profile
from cadenya_server.profiles import bulk_writer, text
from cadenya_server.profiles.schemas import WIRE_TYPES, UserProfile
from cadenya_server.profiles.search import bitmaps, index

BATCH = 100_000
# A batch's webhook events are written this many profiles at a time.
EVENT_CHUNK = 5_000
# An import that takes an account to this many profiles starts its label gram
# counts (index.mark_label_grams): below it, counting a search's candidates is cheap.
LABEL_GRAMS_FROM = 50_000
# An import that takes an account to this many profiles starts its bitmaps
# (search.bitmaps.keep): below it, counting a long needle's candidates is cheap.
BITMAPS_FROM = 50_000
# Batches at least this large have their grams counted in a worker process.
PARALLEL_MIN = 5_000
# on_read is told every this many rows: a bar that moves, at a negligible cost per row.
READ_STEP = 1_000
# The types a profile is stored with.
TYPES = frozenset(WIRE_TYPES)
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
        if _is_json_lines(path):
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


def _is_json_lines(path: Path) -> bool:
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        return True
    with path.open(encoding="utf-8-sig") as handle:
        return handle.read(1) == "{"


def count_rows(path: Path) -> int:
    """How many records the file has, for a progress bar: its lines less the CSV header
    and blank lines (a CSV value that spans lines makes it an overestimate)."""
    with path.open("rb") as handle:
        lines = sum(1 for line in handle if line.strip())
    return lines if _is_json_lines(path) else max(lines - 1, 0)


def _clean(record: Record) -> Record:
    """A profile row from a record, or InvalidArgument."""
    kind = str(record.get("type") or "").lower()
    role = str(record.get("role") or "").lower()
    if kind and kind not in TYPES:
        raise ValueError(f"type {kind!r} is not one of user, api_key, system")
    if role and role not in ROLES:
        raise ValueError(f"role {role!r} is not one of admin, member")
    name = _clean_name(str(record.get("name") or ""))
    email = text.clean_email(str(record.get("email") or ""), field="email")
    labels = record.get("labels") or {}
    if isinstance(labels, str):
        raise ValueError(labels)
    labels, labels_json = _clean_labels(labels)
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
        "labels_json": labels_json,
        "external_id": external_id,
    }
    # A type or role the record leaves out keeps what an existing profile has, so
    # re-importing a plain list of names never demotes an administrator.
    if kind:
        row["type"] = kind
    if role or kind not in ("", "user"):
        row["role"] = role if kind in ("", "user") else ROLE_MEMBER
    return row


# Names and label sets repeat across a file (first and last names recombine, a few
# teams), and checking them is a good part of the work per row.
@lru_cache(maxsize=1 << 16)
def _clean_name(name: str) -> str:
    return text.clean_name(name, field="name")


def _clean_labels(labels: object) -> tuple[dict[str, str], str]:
    """The labels, checked, and their JSON (as the JSON column stores it)."""
    if isinstance(labels, dict):
        try:
            return _checked_labels(tuple(labels.items()))
        except TypeError:
            pass  # a value that cannot be hashed: no string, as the check will say
    labels = validate_labels(labels, field="labels")
    return labels, json.dumps(labels)


@lru_cache(maxsize=1 << 12)
def _checked_labels(items: tuple[tuple[Any, Any], ...]) -> tuple[dict[str, str], str]:
    labels = validate_labels(dict(items), field="labels")
    return labels, json.dumps(labels)


def import_records(
    *,
    db: Database,
    account_id: str,
    records: Iterable[tuple[int, Record | str]],
    on_read: Callable[[int], None] = lambda _n: None,
    on_progress: Callable[[int], None] = lambda _n: None,
) -> ImportReport:
    """Insert or update (by email) every good record; report the bad ones by line.

    `on_read(n)`: n more records read; `on_progress(n)`: n more saved or rejected.
    """
    with db.transaction(write=False) as session:
        account = session.get(Account, account_id)
        if account is None:
            raise ImportAborted(f"no account {account_id}")
        creator = account.creator_profile_id
        label_grams = index.label_grams_marked(session, account_id)
        kept = bitmaps.kept(session, account_id)
        size = session.scalar(
            select(func.count()).select_from(Profile).where(Profile.account_id == account_id)
        )
    report = ImportReport()

    def write(job: _Job) -> None:
        _write_batch(db, account_id, creator, job, report)
        if job.number & (job.number - 1) == 0:
            bulk_writer.refresh_statistics(db)

    with (
        _collector_paused(),
        bulk_writer.sqlite_cache_restored(db),
        _GramCounter() as counter,
        _Pipeline(write, on_progress, threaded=db.dialect == "postgresql") as pipeline,
    ):
        batches = _batches(_counted(records, on_read), report, on_progress)
        for number, batch in enumerate(batches, start=1):
            size += len(batch)
            # The batch that takes the account past the threshold marks it (counting every
            # record, new or not: an estimate that errs on the large side).
            label_grams = label_grams or size >= LABEL_GRAMS_FROM
            kept = kept or size >= BITMAPS_FROM
            counting = counter.count(batch, label_grams=label_grams)
            pipeline.put(_Job(batch, counting, number, label_grams, kept))
    return report


def count_labels(*, db: Database, account_id: str) -> bool:
    """Start keeping the account's label gram counts; False if it already keeps them.

    What an import that takes an account past LABEL_GRAMS_FROM does by itself, for
    an account that grew through the API.
    """
    with db.transaction() as session, index.bulk_index(session, account_id=account_id):
        if session.get(Account, account_id) is None:
            raise ImportAborted(f"no account {account_id}")
        if index.label_grams_marked(session, account_id):
            return False
        index.mark_label_grams(session, account_id)
        return True


def keep_bitmaps(*, db: Database, account_id: str) -> bool:
    """Start keeping the account's bitmaps; False if it already keeps them.

    What an import that takes an account past BITMAPS_FROM does by itself, for an
    account that grew through the API.
    """
    with db.transaction() as session, index.bulk_index(session, account_id=account_id):
        if session.get(Account, account_id) is None:
            raise ImportAborted(f"no account {account_id}")
        return bitmaps.keep(session, account_id)


@dataclass(frozen=True)
class _Job:
    """A batch on its way to the database."""

    batch: dict[str, Record]
    counting: Counting | None
    number: int
    # Whether the account's label grams are counted (index.mark_label_grams).
    label_grams: bool
    # Whether the account keeps bitmaps (search.bitmaps.keep).
    bitmaps: bool


class _Pipeline:
    """Batches to the database one behind the reader.

    A batch is written while the grams of the next are counted. On PostgreSQL the
    writing has a thread of its own, and the next batch is read meanwhile: psycopg
    lets go of the interpreter while the server works. SQLite's driver takes it
    back for every row it inserts, so there the reader would only get in the way.
    """

    def __init__(
        self,
        write: Callable[[_Job], None],
        on_progress: Callable[[int], None],
        *,
        threaded: bool,
    ) -> None:
        self._write = write
        self._on_progress = on_progress
        self._thread = ThreadPoolExecutor(1, "import-writer") if threaded else None
        self._waiting: _Job | None = None
        self._writing: tuple[int, Future[None]] | None = None

    def __enter__(self) -> _Pipeline:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_exc: object) -> None:
        try:
            if exc_type is None:
                self.flush()
        finally:
            if self._thread is not None:
                self._thread.shutdown()

    def put(self, job: _Job) -> None:
        """Write the batch put before this one (or wait until it is written), then this one."""
        self.flush()
        if self._thread is None:
            self._waiting = job
        else:
            self._writing = len(job.batch), self._thread.submit(self._write, job)

    def flush(self) -> None:
        """Every batch put so far written, or the error that stopped one."""
        if self._waiting is not None:
            job, self._waiting = self._waiting, None
            self._write(job)
            self._on_progress(len(job.batch))
        if self._writing is not None:
            size, future = self._writing
            self._writing = None
            future.result()
            self._on_progress(size)


def _counted(
    records: Iterable[tuple[int, Record | str]], on_read: Callable[[int], None]
) -> Iterator[tuple[int, Record | str]]:
    """The records, telling `on_read` as they go by."""
    read = 0
    for read, record in enumerate(records, start=1):
        if read % READ_STEP == 0:
            on_read(READ_STEP)
        yield record
    on_read(read % READ_STEP)


def _batches(
    records: Iterable[tuple[int, Record | str]],
    report: ImportReport,
    on_progress: Callable[[int], None],
) -> Iterator[dict[str, Record]]:
    """The good records as profile rows, BATCH at a time, by email key; the bad ones reported."""
    batch: dict[str, Record] = {}
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
            yield batch
            batch = {}
    if batch:
        yield batch


Counting = Future[index.Counted]
"""The gram counts of a batch's profiles, being counted in a worker process."""


class _GramCounter:
    """Counts the grams of large batches in a worker process.

    Counting is half the work of a batch on this side of the database, and
    needs nothing from it: on a second core it overlaps the writing of the
    batch before. A profile counts under the type it has in its record, or
    "user", the type of a new profile.
    """

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> _GramCounter:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)

    def count(self, batch: dict[str, Record], *, label_grams: bool) -> Counting | None:
        """The batch's counts to come, or None: small batches are counted as they are written."""
        if len(batch) < PARALLEL_MIN:
            return None
        if self._pool is None:
            # Spawned, not forked: the importer's process holds database connections.
            self._pool = ProcessPoolExecutor(
                1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_die_with,
                initargs=(os.getpid(),),
            )
        rows = [
            (r.get("type", "user"), r["name_key"], r["search_text"], r["labels"])
            for r in batch.values()
        ]
        return self._pool.submit(index.count_additions, rows, label_grams=label_grams)


def _die_with(parent_pid: int) -> None:
    """End this worker process when the importer's process ends, however it ends.

    A worker waits for work on a queue it holds both ends of, so it never sees the
    importer go: after a `kill -9` it would wait forever. Linux signals it instead.
    """
    if sys.platform != "linux":
        return
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    # The importer may have died before the request took effect.
    if os.getppid() != parent_pid:
        os._exit(1)


def _write_batch(
    db: Database, account_id: str, creator: str, job: _Job, report: ImportReport
) -> None:
    with db.transaction() as session:
        with index.bulk_index(session, account_id=account_id, label_grams=job.label_grams) as bulk:
            replaced, written, docs = _write_rows(session, account_id, creator, job, bulk, report)
        if job.bitmaps:
            # After the block: on SQLite it numbers the batch's documents as it ends.
            bitmaps.index_batch(
                session, account_id, replaced=replaced, written=written, docs=docs or bulk.docids
            )


def _write_rows(
    session: Session,
    account_id: str,
    creator: str,
    job: _Job,
    bulk: index.BulkIndex,
    report: ImportReport,
) -> tuple[list[index.IndexedRow], list[index.IndexedRow], dict[str, int]]:
    """A batch's profiles and labels written inside a bulk_index block: the profiles it
    replaced as they were, every profile it wrote as it is now, and the documents it
    numbered (PostgreSQL's, of a kept account's new profiles)."""
    batch, counting = job.batch, job.counting
    if job.label_grams and not index.label_grams_marked(session, account_id):
        index.mark_label_grams(session, account_id)
    if job.bitmaps:
        bitmaps.keep(session, account_id)
    writer = bulk_writer.BulkWriter(session)
    # By email: (id, type, name_key, search_text, labels), what the search index holds of it.
    existing = writer.existing(account_id, list(batch))
    new_rows, changed_rows = [], []
    for key, row in batch.items():
        old = existing.get(key)
        if old is None:
            row.setdefault("type", "user")
            row.setdefault("role", ROLE_MEMBER)
            new_rows.append(row)
        else:
            row["id"] = old[0]
            if "type" not in row and old[1] != "user":
                # Counted as a user: the counts are not this batch's.
                counting = None
            row.setdefault("type", old[1])
            changed_rows.append(row)
    replaced = [existing[r["email_key"]] for r in changed_rows]
    bulk.replacing(replaced)
    stamp = now()
    numbered: dict[str, int] = {}
    if new_rows:
        # In name order, two of the indexes take the batch in order, less work for the
        # database than at random. The ids, which share their time and
        # differ at random, are handed out in the same order, so the primary keys of
        # profiles and of their labels take it in order too.
        new_rows.sort(key=itemgetter("name_key"))
        for row, id_ in zip(new_rows, sorted(new_ids("profile", len(new_rows))), strict=True):
            row["id"] = id_
        # PostgreSQL numbers a kept account's documents in the profile rows (the trigger
        # that would stands aside for a bulk write); SQLite as the block ends.
        docs = (
            bitmaps.next_docs(session, account_id, len(new_rows))
            if job.bitmaps and session.get_bind().dialect.name == "postgresql"
            else None
        )
        writer.insert_profiles(
            new_rows, account_id=account_id, creator=creator, stamp=stamp, docs=docs
        )
        if docs is not None:
            numbered = {row["id"]: doc for row, doc in zip(new_rows, docs, strict=True)}
    if changed_rows:
        writer.update_profiles(changed_rows, stamp=stamp)
    written = [
        (r["id"], r["type"], r["name_key"], r["search_text"], r["labels"])
        for r in (*new_rows, *changed_rows)
    ]
    bulk.written(written, counted=counting.result if counting is not None else None)
    writer.insert_labels(
        [
            (id_, account_id, k, v, name_key, text_)
            for id_, _, name_key, text_, labels in written
            for k, v in labels.items()
        ]
    )
    _emit_events(session, account_id, new_rows, changed_rows)
    report.inserted += len(new_rows)
    report.updated += len(changed_rows)
    return replaced, written, numbered


def _emit_events(
    session: Session, account_id: str, new_rows: list[Record], changed_rows: list[Record]
) -> None:
    """One webhook event per profile created or changed, in the batch's own transaction:
    an import's events commit with its batches (and an interrupted import's rerun emits
    `profile.updated` for what it writes again). Only when an endpoint takes them: an
    import into an account without webhooks writes no messages."""
    types = {"profile.created": new_rows, "profile.updated": changed_rows}
    wanted = [t for t, rows in types.items() if rows]
    if not wanted or not outbox.wants(session, account_id=account_id, event_types=wanted):
        return
    for event_type, rows in types.items():
        for start in range(0, len(rows), EVENT_CHUNK):
            ids = [r["id"] for r in rows[start : start + EVENT_CHUNK]]
            profiles = session.scalars(select(Profile).where(Profile.id.in_(ids)))
            outbox.emit(
                session,
                account_id=account_id,
                events=[
                    outbox.Event(
                        event_type, UserProfile.of(p).model_dump(mode="json", by_alias=True)
                    )
                    for p in profiles
                ],
            )


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while the import runs.

    The two batches in flight are some 300,000 dicts and tuples, none of them in
    a cycle, which the collector would walk over and over (bench/README.md).
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
