"""Positional gram bitmaps: exact totals of needles the gram counts only bound.

The gram counts answer a needle of up to grams.MAX_GRAM characters; a longer one
(or a short one with a type and labels) they only bound, and counting its matches one
by one is as slow as the naive scan when they are many (issue #17). An account that
keeps bitmaps (profile_search_accounts.bitmaps, migration 0013) has, for every gram of
MAX_GRAM characters, a compressed bitmap (Roaring, through pyroaring) of every place it
starts in a profile's search text, each place the number `pos << DOC_BITS | doc`; and
for every type and label a bitmap of its documents (facets). A needle is in a document
at `pos` exactly when each gram of a cover of the needle (grams at offsets that leave no
character out) is there at `pos` plus its offset, so its documents are those of the
intersection of the cover's bitmaps, each shifted back by its offset: set operations in
C, however many profiles match. Bitmaps are stored by (key, chunk): a chunk holds
2**CHUNK_BITS documents, so that adding an import's new documents rewrites only the
last chunks.

The stored bitmaps (the base) lag the profiles: a write of a kept account adds a row to
profile_search_dirt by trigger, with the profile's state before it (none for a new
one). A search reads, in one statement and so one snapshot, the cover's bitmaps, the
documents of the dirt, and whether each dirty profile matches now; its documents are
the base's less every dirty document plus the dirty ones that match. Compaction
(`compact`, in every server's background: `Compactor`) folds the dirt into the
base: it removes every state the dirt names and adds the current one. A base holds a
profile's state as of some moment; any change after it left a row, so removing what
every row names and adding what is there now leaves exactly the current state. The
importer adds its batches to the base itself (`apply`), in their own transactions.
Whoever rewrites the base holds the account's row of profile_search_bitmap_state.

Documents are numbered per account: on SQLite by profile_search_docs (migration
0003), on PostgreSQL by profiles.search_doc from a sequence per account. An account
past MAX_DOC documents stops keeping bitmaps, and its searches count as before.
"""

from __future__ import annotations

import array
import json
import secrets
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import structlog
from pyroaring import BitMap
from sqlalchemy import text as sql
from sqlalchemy.orm import Session

from cadenya_server.kit.db import Database
from cadenya_server.profiles.search import index
from cadenya_server.profiles.search.grams import MAX_GRAM
from cadenya_server.profiles.text import SEPARATOR

log = structlog.get_logger(__name__)

# A place in a bitmap: pos << DOC_BITS | doc. A search text is at most 521 characters
# (profiles.text), so a position takes 10 bits.
DOC_BITS = 22
MAX_DOC = (1 << DOC_BITS) - 1
CHUNK_BITS = 18
# Facet keys start with a control character, which no gram holds.
FACET = "\x01"
# How many keys or documents one statement names.
STATEMENT_KEYS = 5000
# Profiles read at a time when an account starts keeping bitmaps.
BUILD_BATCH = 100_000

State = tuple[int, str, str, Mapping[str, str]]
"""(doc, search_text, type, labels) of a profile."""
Slot = tuple[str, int]
"""(key, chunk) of a stored bitmap."""


def type_key(type_: str) -> str:
    return f"{FACET}type:{type_}"


def label_key(key: str, value: str) -> str:
    return f"{FACET}label:{key}={value}"


# -- What a set of profiles puts in the bitmaps -------------------------------------------


def bitmaps_of(states: Sequence[State]) -> dict[Slot, BitMap]:
    """The bitmaps these profiles alone would have."""
    found = _gram_bitmaps(states)
    facets: dict[Slot, list[int]] = defaultdict(list)
    for doc, _, type_, labels in states:
        chunk = doc >> CHUNK_BITS
        facets[type_key(type_), chunk].append(doc)
        for key, value in labels.items():
            facets[label_key(key, value), chunk].append(doc)
    for slot, docs in facets.items():
        found[slot] = BitMap(docs)
    return found


def _gram_bitmaps(states: Sequence[State]) -> dict[Slot, BitMap]:
    """Every gram's places in these search texts, found for all texts at once: per-row
    Python would be most of an import's time."""
    by_chunk: dict[int, list[State]] = defaultdict(list)
    for state in states:
        by_chunk[state[0] >> CHUNK_BITS].append(state)
    found: dict[Slot, BitMap] = {}
    for chunk, part in by_chunk.items():
        for gram, bitmap in _chunk_gram_bitmaps(part):
            found[gram, chunk] = bitmap
    return found


def _chunk_gram_bitmaps(states: Sequence[State]) -> Iterator[tuple[str, BitMap]]:
    """The grams' places in the texts of documents of one chunk.

    Each place is one 64-bit number, the gram (its characters' ranks in the texts'
    alphabet) above the place's index, so that one plain sort groups them.
    """
    texts = [state[1] for state in states]
    # NUL ends each text (stored text holds no control character).
    points = np.frombuffer(("\x00".join(texts) + "\x00").encode("utf-32-le"), dtype=np.uint32)
    starts = len(points) - MAX_GRAM + 1
    if starts <= 0:
        return
    present = np.zeros(0x110000, dtype=bool)
    present[points] = True
    alphabet = np.flatnonzero(present)
    char_bits = max(1, int(alphabet.size - 1).bit_length())
    index_bits = max(1, starts.bit_length())
    if MAX_GRAM * char_bits + index_bits > 64:
        # Too many distinct characters to pack: halve the texts until they fit (one text
        # of at most 521 characters always does).
        half = len(states) // 2
        yield from _chunk_gram_bitmaps(states[:half])
        yield from _chunk_gram_bitmaps(states[half:])
        return
    ranks = (np.cumsum(present, dtype=np.uint64) - np.uint64(1))[points]
    # Grams across the end of a text or the name/email separator are never asked for.
    stop = (points == 0) | (points == ord(SEPARATOR))
    inside = np.flatnonzero(~np.logical_or.reduce([stop[k : k + starts] for k in range(MAX_GRAM)]))
    packed = np.zeros(inside.size, dtype=np.uint64)
    for k in range(MAX_GRAM):
        shift = np.uint64(index_bits + char_bits * (MAX_GRAM - 1 - k))
        packed |= ranks[inside + k] << shift
    packed |= inside.astype(np.uint64)
    packed.sort()
    places = (packed & np.uint64((1 << index_bits) - 1)).astype(np.int64)
    grams = packed >> np.uint64(index_bits)
    lengths = np.fromiter((len(t) + 1 for t in texts), dtype=np.int64, count=len(texts))
    owner = np.repeat(np.arange(len(texts)), lengths)[places]
    positions = (places - (np.cumsum(lengths) - lengths)[owner]).astype(np.uint32)
    docs = np.fromiter((state[0] for state in states), dtype=np.uint32, count=len(states))
    values = (positions << np.uint32(DOC_BITS)) | docs[owner]
    if not grams.size:
        return
    edges = (np.flatnonzero(grams[1:] != grams[:-1]) + 1).tolist()
    mask = (1 << char_bits) - 1
    for start, end in zip([0, *edges], [*edges, grams.size], strict=True):
        code = int(grams[start])
        gram = "".join(
            chr(alphabet[(code >> (char_bits * (MAX_GRAM - 1 - k))) & mask])
            for k in range(MAX_GRAM)
        )
        yield gram, BitMap(array.array("I", values[start:end].tobytes()))


def _merged(a: dict[Slot, BitMap], b: dict[Slot, BitMap]) -> dict[Slot, BitMap]:
    for slot, bitmap in b.items():
        if slot in a:
            a[slot] |= bitmap
        else:
            a[slot] = bitmap
    return a


# -- The stored base ---------------------------------------------------------------------


def _load(session: Session, account_no: int, keys: Iterable[str]) -> dict[Slot, BitMap]:
    """The stored bitmaps of these keys, every chunk."""
    found: dict[Slot, BitMap] = {}
    wanted = sorted(set(keys))
    postgresql = index.dialect(session) == "postgresql"
    statement = sql(
        "SELECT key, chunk, bits FROM profile_search_bitmaps WHERE account_no = :no AND "
        + ("key = ANY(:keys)" if postgresql else "key IN (SELECT value FROM json_each(:keys))")
    )
    for start in range(0, len(wanted), STATEMENT_KEYS):
        part = wanted[start : start + STATEMENT_KEYS]
        values = {"no": account_no, "keys": part if postgresql else json.dumps(part)}
        for key, chunk, bits in session.execute(statement, values):
            found[key, chunk] = BitMap.deserialize(bytes(bits))
    return found


def _store(
    session: Session, account_no: int, written: list[tuple[str, int, bytes]], gone: list[Slot]
) -> None:
    connection = session.connection()
    if index.dialect(session) == "sqlite":
        if written:
            connection.exec_driver_sql(
                "INSERT INTO profile_search_bitmaps (account_no, key, chunk, bits, version) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (account_no, key, chunk) "
                "DO UPDATE SET bits = excluded.bits, version = excluded.version",
                [(account_no, *row, _version()) for row in written],
            )
        if gone:
            connection.exec_driver_sql(
                "DELETE FROM profile_search_bitmaps WHERE account_no = ? AND key = ? AND chunk = ?",
                [(account_no, *slot) for slot in gone],
            )
        return
    if written:
        index.copy_into_temporary(
            connection,
            'profile_search_bitmaps_batch (key text COLLATE "C", chunk integer, bits bytea, '
            "version bigint)",
            [(*row, _version()) for row in written],
        )
        connection.execute(
            sql(
                "INSERT INTO profile_search_bitmaps AS b (account_no, key, chunk, bits, version) "
                "SELECT :no, key, chunk, bits, version FROM profile_search_bitmaps_batch "
                "ORDER BY key, chunk ON CONFLICT (account_no, key, chunk) "
                "DO UPDATE SET bits = excluded.bits, version = excluded.version"
            ),
            {"no": account_no},
        )
    if gone:
        index.copy_into_temporary(
            connection, 'profile_search_bitmaps_gone (key text COLLATE "C", chunk integer)', gone
        )
        connection.execute(
            sql(
                "DELETE FROM profile_search_bitmaps AS b USING profile_search_bitmaps_gone AS g "
                "WHERE b.account_no = :no AND b.key = g.key AND b.chunk = g.chunk"
            ),
            {"no": account_no},
        )


def _version() -> int:
    """A stored bitmap's version, new at every write: what the cache checks (_Cache)."""
    return secrets.randbits(62)


class _Cache:
    """Stored bitmaps this process has read, by (account, key, chunk) and version, up to
    `limit` serialized bytes, least recently used dropped first.

    A search names the versions it holds and reads only the other bitmaps' bytes: the
    grams of a needle being typed and its type's and labels' documents come again and
    again, and a chunk's bitmaps change only when writes touch that chunk. Entries are
    shared between threads: never changed in place.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._size = 0
        self._entries: OrderedDict[tuple[int, str, int], tuple[int, int, BitMap]] = OrderedDict()
        # (account, key) -> {chunk: version}: what `held` looks up.
        self._versions: dict[tuple[int, str], dict[int, int]] = defaultdict(dict)
        self._lock = threading.Lock()

    def held(self, account_no: int, keys: Iterable[str]) -> list[str]:
        """Tokens (key, chunk, version) of what this process holds of these keys."""
        with self._lock:
            return [
                _token(key, chunk, version)
                for key in keys
                for chunk, version in self._versions.get((account_no, key), {}).items()
            ]

    def get(self, account_no: int, key: str, chunk: int, version: int) -> BitMap | None:
        with self._lock:
            entry = self._entries.get((account_no, key, chunk))
            if entry is None or entry[0] != version:
                return None
            self._entries.move_to_end((account_no, key, chunk))
            return entry[2]

    def put(self, account_no: int, key: str, chunk: int, version: int, bits: bytes) -> BitMap:
        bitmap = BitMap.deserialize(bits)
        with self._lock:
            self._drop((account_no, key, chunk))
            self._entries[account_no, key, chunk] = (version, len(bits), bitmap)
            self._versions[account_no, key][chunk] = version
            self._size += len(bits)
            while self._size > self._limit:
                self._drop(next(iter(self._entries)))
        return bitmap

    def _drop(self, slot: tuple[int, str, int]) -> None:
        entry = self._entries.pop(slot, None)
        if entry is None:
            return
        self._size -= entry[1]
        versions = self._versions[slot[0], slot[1]]
        del versions[slot[2]]
        if not versions:
            del self._versions[slot[0], slot[1]]


def _token(key: str, chunk: int, version: int) -> str:
    """What find's statement compares to tell a held bitmap (see _find_statement)."""
    return f"{key}\x1f{chunk}:{version}"


# Per server process (bench/README.md tells what it saves).
CACHE_BYTES = 256 << 20
_cache = _Cache(CACHE_BYTES)


def _lock(session: Session, account_no: int, *, wait: bool) -> bool:
    """Hold the account's right to rewrite its base until the transaction ends; False if
    another transaction holds it and `wait` is off. SQLite's one writer holds it anyway."""
    if index.dialect(session) == "sqlite":
        return True
    skip = "" if wait else " SKIP LOCKED"
    held = session.execute(
        sql(
            "SELECT account_no FROM profile_search_bitmap_state "
            f"WHERE account_no = :no FOR UPDATE{skip}"
        ),
        {"no": account_no},
    ).first()
    return held is not None


def apply(
    session: Session, account_no: int, *, removed: Sequence[State], added: Sequence[State]
) -> None:
    """Take these states out of the base, then put these in (the caller holds the lock)."""
    minus, plus = bitmaps_of(removed), bitmaps_of(added)
    touched = sorted(minus.keys() | plus.keys())
    stored = _load(session, account_no, {key for key, _ in touched})
    written: list[tuple[str, int, bytes]] = []
    gone: list[Slot] = []
    for slot in touched:
        before = stored.get(slot)
        bitmap = BitMap() if before is None else before
        if slot in minus:
            bitmap -= minus[slot]
        if slot in plus:
            bitmap |= plus[slot]
        if bitmap:
            bitmap.run_optimize()
            written.append((*slot, bitmap.serialize()))
        elif before is not None:
            gone.append(slot)
    _store(session, account_no, written, gone)


# -- Which accounts keep them ------------------------------------------------------------


def kept(session: Session, account_id: str) -> bool:
    return bool(
        session.execute(
            sql("SELECT bitmaps FROM profile_search_accounts WHERE account_id = :a"),
            {"a": account_id},
        ).scalar()
    )


def keep(session: Session, account_id: str) -> bool:
    """Start keeping the account's bitmaps, from the profiles it has; False if it keeps
    them already or has too many documents.

    Holds every stripe of the account's counts (index.hold_all_stripes): every writer
    takes one before it reads whether the account keeps bitmaps (migration 0013), so
    none can miss the change.
    """
    index.hold_all_stripes(session, account_id)
    if kept(session, account_id):
        return False
    account_no = index.number(session, account_id)
    postgresql = index.dialect(session) == "postgresql"
    if postgresql:
        session.execute(sql(f"CREATE SEQUENCE IF NOT EXISTS {_sequence(account_no)}"))
        session.execute(
            sql(
                f"UPDATE profiles SET search_doc = nextval('{_sequence(account_no)}') "
                "WHERE account_id = :a AND search_doc IS NULL"
            ),
            {"a": account_id},
        )
    session.execute(
        sql(
            "INSERT INTO profile_search_bitmap_state (account_no) VALUES (:no) "
            "ON CONFLICT (account_no) DO NOTHING"
        ),
        {"no": account_no},
    )
    _lock(session, account_no, wait=True)
    # Left over from an earlier time the account kept them.
    session.execute(
        sql("DELETE FROM profile_search_bitmaps WHERE account_no = :no"), {"no": account_no}
    )
    session.execute(
        sql("DELETE FROM profile_search_dirt WHERE account_no = :no"), {"no": account_no}
    )
    built: dict[Slot, BitMap] = {}
    for states in _account_states(session, account_id, account_no):
        if states and max(state[0] for state in states) > MAX_DOC:
            return False
        _merged(built, bitmaps_of(states))
    written = []
    for slot, bitmap in sorted(built.items()):
        bitmap.run_optimize()
        written.append((*slot, bitmap.serialize()))
    _store(session, account_no, written, [])
    session.execute(
        sql("UPDATE profile_search_accounts SET bitmaps = :on WHERE no = :no"),
        {"on": True, "no": account_no},
    )
    return True


def _sequence(account_no: int) -> str:
    """The sequence that numbers an account's documents on PostgreSQL (migration 0013)."""
    return f"profile_search_doc_{int(account_no)}"


def next_docs(session: Session, account_id: str, count: int) -> list[int]:
    """Document numbers for `count` new profiles of a kept account (PostgreSQL)."""
    account_no = index.number(session, account_id)
    return list(
        session.scalars(
            sql(f"SELECT nextval('{_sequence(account_no)}') FROM generate_series(1, :n)"),
            {"n": count},
        )
    )


def _account_states(session: Session, account_id: str, account_no: int) -> Iterator[list[State]]:
    """Every profile of the account as bitmaps hold it, BUILD_BATCH at a time."""
    if index.dialect(session) == "postgresql":
        statement = sql(
            "SELECT search_doc, search_text, type, labels FROM profiles WHERE account_id = :a"
        )
    else:
        statement = sql(
            f"SELECT d.docid - (:no << {index.DOC_BITS}), p.search_text, p.type, p.labels "
            "FROM profiles AS p JOIN profile_search_docs AS d ON d.profile_id = p.id "
            "WHERE p.account_id = :a"
        )
    rows = session.execute(
        statement.execution_options(yield_per=BUILD_BATCH), {"a": account_id, "no": account_no}
    )
    for part in rows.partitions():
        yield [_state(row) for row in part]


def _state(row: Any) -> State:
    doc, text_, type_, labels = row
    return int(doc), text_, type_, json.loads(labels) if isinstance(labels, str) else labels


def _stop_keeping(session: Session, account_no: int) -> None:
    """An account past MAX_DOC documents: its searches count as before."""
    session.execute(
        sql("UPDATE profile_search_accounts SET bitmaps = :off WHERE no = :no"),
        {"off": False, "no": account_no},
    )
    for table in ("profile_search_bitmaps", "profile_search_dirt"):
        session.execute(sql(f"DELETE FROM {table} WHERE account_no = :no"), {"no": account_no})
    log.warning("search_bitmaps_dropped", account_no=account_no, max_doc=MAX_DOC)


# -- Compaction -------------------------------------------------------------------------


def compact(session: Session, account_no: int) -> int:
    """Fold the account's dirt into its base; how many dirt rows it folded (0 when another
    transaction is rewriting the base)."""
    if not _lock(session, account_no, wait=False):
        return 0
    postgresql = index.dialect(session) == "postgresql"
    keeps = session.execute(
        sql("SELECT bitmaps FROM profile_search_accounts WHERE no = :no"), {"no": account_no}
    ).scalar()
    if not keeps:
        # It stopped keeping them (_stop_keeping): its numbered profiles still leave dirt.
        session.execute(
            sql("DELETE FROM profile_search_dirt WHERE account_no = :no"), {"no": account_no}
        )
        return 0
    dirt = session.execute(
        sql(
            "SELECT seq, profile_id, doc, text, type, labels FROM profile_search_dirt "
            "WHERE account_no = :no"
        ),
        {"no": account_no},
    ).all()
    if not dirt:
        return 0
    removed = [
        _state((doc, text_, type_, labels))
        for _, _, doc, text_, type_, labels in dirt
        if text_ is not None
    ]
    ids = sorted({row[1] for row in dirt})
    if postgresql:
        current_statement = sql(
            "SELECT search_doc, search_text, type, labels FROM profiles "
            "WHERE id = ANY(:ids) AND search_doc IS NOT NULL"
        )
    else:
        current_statement = sql(
            f"SELECT d.docid - (:no << {index.DOC_BITS}), p.search_text, p.type, p.labels "
            "FROM profiles AS p JOIN profile_search_docs AS d ON d.profile_id = p.id "
            "WHERE p.id IN (SELECT value FROM json_each(:ids))"
        )
    added: list[State] = []
    for start in range(0, len(ids), STATEMENT_KEYS):
        part = ids[start : start + STATEMENT_KEYS]
        values = {"no": account_no, "ids": part if postgresql else json.dumps(part)}
        added += [_state(row) for row in session.execute(current_statement, values)]
    if any(state[0] > MAX_DOC for state in added):
        _stop_keeping(session, account_no)
        return len(dirt)
    apply(session, account_no, removed=removed, added=added)
    seqs = [row[0] for row in dirt]
    delete = sql(
        "DELETE FROM profile_search_dirt WHERE "
        + ("seq = ANY(:seqs)" if postgresql else "seq IN (SELECT value FROM json_each(:seqs))")
    )
    for start in range(0, len(seqs), STATEMENT_KEYS):
        part = seqs[start : start + STATEMENT_KEYS]
        session.execute(delete, {"seqs": part if postgresql else json.dumps(part)})
    return len(dirt)


def dirty_accounts(session: Session) -> list[int]:
    return list(session.scalars(sql("SELECT DISTINCT account_no FROM profile_search_dirt")))


def compact_all(db: Database) -> int:
    """Fold the dirt of every account, each in a transaction of its own."""
    with db.transaction(write=False) as session:
        accounts = dirty_accounts(session)
    folded = 0
    for account_no in accounts:
        with db.transaction() as session:
            folded += compact(session, account_no)
    return folded


# Set by a search that read dirt: its process's compactor folds it at once.
_dirt_seen = threading.Event()


class Compactor:
    """Folds the dirt into the base in the background, inside `serve` (see compact).

    It looks every `interval` seconds while it finds dirt, backing off to `idle` while it
    finds none; a search that reads dirt wakes it.
    """

    def __init__(self, db: Database, *, interval: float = 0.5, idle: float = 8.0) -> None:
        self._db = db
        self._interval = interval
        self._idle = idle
        self._stopping = False
        self._thread = threading.Thread(target=self._main, name="search-compactor", daemon=True)

    def _main(self) -> None:
        wait = self._interval
        while True:
            _dirt_seen.wait(wait)
            _dirt_seen.clear()
            if self._stopping:
                return
            try:
                folded = compact_all(self._db)
            except Exception:
                # A busy database or a lost connection: the next round tries again.
                log.warning("search_compaction_failed", exc_info=True)
                folded = 0
            wait = self._interval if folded else min(2 * wait, self._idle)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10) -> None:
        self._stopping = True
        _dirt_seen.set()
        self._thread.join(timeout)


# -- Searching --------------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """A search's matching documents, exact."""

    docs: BitMap

    @property
    def total(self) -> int:
        return len(self.docs)


def cover(needle: str, weights: Mapping[str, int]) -> list[int]:
    """Offsets of grams that together hold every character of the needle, of the least
    total weight (how many profiles hold each gram: what its bitmaps cost to read)."""
    last = len(needle) - MAX_GRAM
    best: list[
        tuple[int, int]
    ] = []  # per offset: (cost of a cover of needle[: offset + MAX_GRAM], previous)
    for offset in range(last + 1):
        weight = weights.get(needle[offset : offset + MAX_GRAM], 0) + 1
        if offset == 0:
            best.append((weight, -1))
            continue
        previous = min(range(max(0, offset - MAX_GRAM), offset), key=lambda k: best[k][0])
        best.append((best[previous][0] + weight, previous))
    chosen, offset = [], last
    while offset >= 0:
        chosen.append(offset)
        offset = best[offset][1]
    return chosen[::-1]


def find(
    session: Session,
    account_no: int,
    *,
    needle: str,
    type_: str | None,
    labels: Mapping[str, str],
    weights: Mapping[str, int],
) -> Found | None:
    """The documents of a needle of at least MAX_GRAM characters; None when some document
    is past MAX_DOC (the compactor is about to stop keeping the account's bitmaps)."""
    offsets = cover(needle, weights)
    grams = [needle[offset : offset + MAX_GRAM] for offset in offsets]
    facets = ([type_key(type_)] if type_ else []) + [label_key(k, v) for k, v in labels.items()]
    postgresql = index.dialect(session) == "postgresql"
    values: dict[str, Any] = {"no": account_no, "needle": needle}
    keys = sorted({*grams, *facets})
    values["keys"] = keys if postgresql else json.dumps(keys)
    held = _cache.held(account_no, keys)
    values["held"] = held if postgresql else json.dumps(held)
    if type_:
        values["type"] = type_
    if postgresql:
        values["labels"] = json.dumps(dict(labels))
    else:
        for n, (key, value) in enumerate(labels.items()):
            values[f"key_{n}"], values[f"value_{n}"] = key, value
    statement = _find_statement(postgresql, bool(type_), len(labels))
    stored: dict[str, dict[int, BitMap]] = defaultdict(dict)
    dirty, hits = BitMap(), BitMap()
    for key, chunk, version, bits, doc, hit in _rows(session, statement, values):
        if key is not None:
            bitmap = None if bits is not None else _cache.get(account_no, key, chunk, version)
            if bitmap is None:
                if bits is None:
                    # Dropped from the cache by another thread meanwhile.
                    return find(
                        session,
                        account_no,
                        needle=needle,
                        type_=type_,
                        labels=labels,
                        weights=weights,
                    )
                bitmap = _cache.put(account_no, key, chunk, version, bytes(bits))
            stored[key][chunk] = bitmap
            continue
        if doc is None or doc > MAX_DOC:
            return None
        dirty.add(doc)
        if hit:
            hits.add(doc)
    # Chunks hold disjoint documents: the places of every chunk, then their documents.
    found = []
    for chunk in set.intersection(*(set(stored[gram]) for gram in grams)):
        # Smallest first: each intersection is at most as large as it.
        places = sorted(
            (
                stored[gram][chunk].shift(-(offset << DOC_BITS)) if offset else stored[gram][chunk]
                for gram, offset in zip(grams, offsets, strict=True)
            ),
            key=len,
        )
        found.append(BitMap.intersection(*places) if len(places) > 1 else places[0])
    docs = _documents(BitMap.union(*found)) if found else BitMap()
    for facet in facets:
        docs &= BitMap.union(*stored[facet].values()) if stored[facet] else BitMap()
    if dirty:
        _dirt_seen.set()
    docs -= dirty
    docs |= hits
    return Found(docs)


def _documents(places: BitMap) -> BitMap:
    """The documents of places (pos << DOC_BITS | doc): each position's range of places
    taken out and shifted down, container by container in C."""
    if not places:
        return BitMap()
    parts = []
    for position in range(places.min() >> DOC_BITS, (places.max() >> DOC_BITS) + 1):
        first = position << DOC_BITS
        last = first + (1 << DOC_BITS)
        if places.range_cardinality(first, last):
            parts.append(places.intersection(BitMap(range(first, last))).shift(-first))
    return BitMap.union(*parts)


_statements: dict[tuple[bool, bool, int], str] = {}


def _rows(session: Session, statement: str, values: dict[str, Any]) -> list[Any]:
    """A statement's rows straight from the driver: on PostgreSQL in binary, where bytea
    in text would be hex, twice the bytes, decoded in Python (bench/README.md)."""
    if index.dialect(session) == "sqlite":
        return session.connection().exec_driver_sql(statement, values).all()
    connection = session.connection().connection.driver_connection
    with connection.cursor(binary=True) as cursor:
        cursor.execute(statement, values)
        return cursor.fetchall()


def _find_statement(postgresql: bool, typed: bool, labels: int) -> str:
    """find's statement, with the driver's own placeholders (see _rows)."""
    shape = (postgresql, typed, labels)
    statement = _statements.get(shape)
    if statement is not None:
        return statement

    def value(name: str) -> str:
        return f"%({name})s" if postgresql else f":{name}"

    token = "b.key || chr(31) || b.chunk || ':' || b.version"
    if postgresql:
        keys = f"b.key = ANY({value('keys')})"
        held = f"{token} = ANY({value('held')})"
        contains = f"strpos(p.search_text, {value('needle')}) > 0"
        doc = "p.search_doc"
        docs_join = ""
        label_tests = [f"p.labels @> CAST({value('labels')} AS jsonb)"] if labels else []
    else:
        keys = f"b.key IN (SELECT value FROM json_each({value('keys')}))"
        held = f"{token.replace('chr(', 'char(')} IN (SELECT value FROM json_each({value('held')}))"
        contains = f"instr(p.search_text, {value('needle')}) > 0"
        doc = f"s.docid - ({value('no')} << {index.DOC_BITS})"
        docs_join = "JOIN profile_search_docs AS s ON s.profile_id = p.id "
        label_tests = [
            "EXISTS (SELECT 1 FROM profile_labels AS l WHERE l.profile_id = p.id "
            f"AND l.key = {value(f'key_{n}')} AND l.value = {value(f'value_{n}')})"
            for n in range(labels)
        ]
    tests = [contains, *([f"p.type = {value('type')}"] if typed else []), *label_tests]
    hit = " AND ".join(tests)
    no = value("no")
    # A held bitmap's bytes are not even read: TOAST and overflow pages are read only
    # for a value the statement returns.
    statement = (
        f"SELECT b.key, b.chunk, b.version, CASE WHEN {held} THEN NULL ELSE b.bits END, "
        "CAST(NULL AS INTEGER), CAST(NULL AS INTEGER) "
        f"FROM profile_search_bitmaps AS b WHERE b.account_no = {no} AND {keys} "
        "UNION ALL SELECT NULL, NULL, NULL, NULL, d.doc, NULL FROM profile_search_dirt AS d "
        f"WHERE d.account_no = {no} AND d.doc IS NOT NULL "
        f"UNION ALL SELECT NULL, NULL, NULL, NULL, {doc}, CASE WHEN {hit} THEN 1 ELSE 0 END "
        f"FROM profile_search_dirt AS d JOIN profiles AS p ON p.id = d.profile_id {docs_join}"
        f"WHERE d.account_no = {no}"
    )
    _statements[shape] = statement
    return statement


def keys_of(
    session: Session, account_no: int, account_id: str, docs: BitMap
) -> list[tuple[str, str]]:
    """The (name_key, id) of these documents, sorted."""
    wanted = list(docs)
    found: list[tuple[str, str]] = []
    if index.dialect(session) == "postgresql":
        statement = sql(
            "SELECT name_key, id FROM profiles WHERE account_id = :a AND search_doc = ANY(:docs)"
        )
        for start in range(0, len(wanted), STATEMENT_KEYS):
            part = wanted[start : start + STATEMENT_KEYS]
            found += session.execute(statement, {"a": account_id, "docs": part}).all()
    else:
        first = account_no << index.DOC_BITS
        statement = sql(
            "SELECT name_key, profile_id FROM profile_search_docs "
            "WHERE docid IN (SELECT value FROM json_each(:docs))"
        )
        for start in range(0, len(wanted), STATEMENT_KEYS):
            part = [first + doc for doc in wanted[start : start + STATEMENT_KEYS]]
            found += session.execute(statement, {"docs": json.dumps(part)}).all()
    return sorted((name_key, id_) for name_key, id_ in found)


def index_batch(
    session: Session,
    account_id: str,
    *,
    replaced: Sequence[index.IndexedRow],
    written: Sequence[index.IndexedRow],
    docs: Mapping[str, int],
) -> None:
    """The bulk importer's batch into a kept account's base, in the batch's transaction
    (after index.bulk_index has numbered its documents): `replaced`, the profiles it
    rewrote as they were; `written`, every profile it wrote as it is now; `docs`, the
    documents of those it knows (the others are looked up)."""
    account_no = index.number(session, account_id)
    if index.dialect(session) == "sqlite":
        docs = {id_: docid - (account_no << index.DOC_BITS) for id_, docid in docs.items()}
    ids = sorted(({row[0] for row in written} | {row[0] for row in replaced}) - docs.keys())
    docs = {**docs, **dict(_docs_of(session, account_no, ids))}
    if any(doc > MAX_DOC for doc in docs.values()):
        _stop_keeping(session, account_no)
        return
    _lock(session, account_no, wait=True)

    def states(rows: Sequence[index.IndexedRow]) -> list[State]:
        return [(docs[id_], text_, type_, labels) for id_, type_, _, text_, labels in rows]

    apply(session, account_no, removed=states(replaced), added=states(written))


def _docs_of(session: Session, account_no: int, ids: list[str]) -> Iterator[tuple[str, int]]:
    """(profile id, document) of these profiles of a kept account."""
    if index.dialect(session) == "postgresql":
        statement = sql("SELECT id, search_doc FROM profiles WHERE id = ANY(:ids)")
    else:
        statement = sql(
            f"SELECT profile_id, docid - (:no << {index.DOC_BITS}) FROM profile_search_docs "
            "WHERE profile_id IN (SELECT value FROM json_each(:ids))"
        )
    postgresql = index.dialect(session) == "postgresql"
    for start in range(0, len(ids), STATEMENT_KEYS):
        part = ids[start : start + STATEMENT_KEYS]
        values = {"no": account_no, "ids": part if postgresql else json.dumps(part)}
        for id_, doc in session.execute(statement, values):
            yield id_, int(doc)
