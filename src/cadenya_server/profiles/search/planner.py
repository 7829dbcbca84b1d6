"""The profile search planner: how a search's total and pages are found.

A search is an account, a lower-cased substring of name or email (the needle), and
optionally a profile type and labels; its answer is a page in the contract's order,
(name_key, id), after a cursor, with the exact total. Three structures answer it
(migrations 0003 and 0006): the gram counts (how many profiles of a type, or with a
label, hold each gram of up to grams.MAX_GRAM characters, with bounds on their name
keys); a trigram index that lists candidates (on SQLite the FTS5 table
profile_search_fts, exact, with a token per type and label; on PostgreSQL the pg_trgm
GIN index, a superset that a substring test rechecks); and the B-tree indexes that list
an account's, a type's or a label's profiles in name order.

An account that keeps positional gram bitmaps (bitmaps.py, large accounts) answers a
needle of MAX_GRAM or more characters from them: its exact total whatever it matches,
and its candidates as their keys looked up by document.

A `Plan` first reads the counts of the needle's grams in one round trip: the fewest
profiles holding any one of them bound the matches. For a needle no longer than a gram
that bound is the total (with labels: one label, no type, in an account that keeps label
counts); else the total is counted, by walking the name order when the scope is small or
no trigram serves, else from the trigram index's candidates, fetched and kept when they
are few so that the first page sorts them instead of asking again. A page either walks
the name order from the cursor and tests each entry (cheap when matches are dense) or
sorts the candidates (cheap when they are few): the counts estimate both costs (limit *
scope / matches entries walked, CANDIDATE_COST per candidate). A walk reads windows that
double in size and hands over to the candidates once it has read what they would cost,
which happens where matches are sparser than on average. It reads the rows of the
search's rarest label when it names labels and no type, else the type's or the
account's. Cursors carry the last (name_key, id) and the total, so later pages skip the
count. Every statement is built once per shape, its values bound at execution (see
_Statements).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    Integer,
    Row,
    Select,
    String,
    and_,
    any_,
    bindparam,
    column,
    exists,
    func,
    null,
    select,
    table,
    tuple_,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Session

from cadenya_server.models import (
    Profile,
    ProfileLabel,
    ProfileSearchAccount,
    ProfileSearchGram,
    ProfileSearchLabelGram,
)
from cadenya_server.profiles.search import bitmaps, grams
from cadenya_server.profiles.search.index import DOC_BITS, dialect, docs, facet_token

_T = TypeVar("_T")


@dataclass(frozen=True)
class SearchFilter:
    """A search: `needle` is already lower-cased."""

    account_id: str
    needle: str = ""
    type: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


# What a page shows of a profile, read as plain rows: ORM instances (identity map,
# instance state) cost more than the database's work on a page (bench/README.md).
PAGE_COLUMNS = (
    Profile.id,
    Profile.account_id,
    Profile.type,
    Profile.name,
    Profile.email,
    Profile.name_key,
    Profile.external_id,
    Profile.labels,
    Profile.creator_profile_id,
    Profile.created_at,
    Profile.deactivated_at,
)
# A count of at most this many candidates fetches them, for the page to sort.
REMEMBERED_MATCHES = 2000
# Profiles in scope below which a plain scan beats any index.
SMALL_SCOPE = 5000
# What one candidate costs (index lookup, row fetch, sort) against one walked row.
CANDIDATE_COST = {"sqlite": 5, "postgresql": 10}
# What a candidate from the bitmaps costs against one from the trigram index: its name
# key is looked up by document, one index descent each (bench/README.md).
KEYED_FACTOR = {"sqlite": 2, "postgresql": 1}
# A walk looks ahead twice the rows it expects to need (at least MIN_WALK_BUDGET),
# then twice as far each time the page is not full yet (finding where to stop
# costs as much as the rows). Once it has read HANDOVER times what sorting the
# candidates costs, it hands over to them.
WALK_FACTOR = 2
MIN_WALK_BUDGET = 1000
HANDOVER = 1.0

_fts = table("profile_search_fts", column("rowid", Integer), column("profile_search_fts", String))
_facets = table("profile_search_facets", column("id", Integer), column("facet", String))


@dataclass(frozen=True)
class _Stats:
    """What the gram counts say about a search."""

    account_no: int | None
    # Profiles of the account (of the type, when the search names one).
    scope: int
    # Profiles matching the search: exact when `exact`, else an upper bound.
    matches: int
    exact: bool
    # Every match has lo <= name_key <= hi (None: no bound).
    lo: str | None = None
    hi: str | None = None
    # What pg_trgm should look up for the needle (see _probes).
    probes: tuple[str, ...] = ()
    # The label whose rows a walk reads (see _order), and how many profiles have it
    # (at most: scope when the account keeps no label gram counts).
    walk_label: tuple[str, str] | None = None
    walk_scope: int = 0
    # Whether the account keeps bitmaps, and how many profiles hold each of the needle's
    # grams (what their bitmaps cost to read: bitmaps.cover).
    bitmaps: bool = False
    weights: dict[str, int] = field(default_factory=dict)


def _read_stats(session: Session, search: SearchFilter) -> _Stats:
    pieces = grams.of_needle(search.needle) if search.needle else []

    def build() -> Select[Any] | CompoundSelect:
        a, g, lg = ProfileSearchAccount, ProfileSearchGram, ProfileSearchLabelGram
        counted = [g.account_no == a.no, _one_of(session, g.gram, "grams")]
        if search.type:
            counted.append(g.type == bindparam("type"))
        found = (
            select(
                a.no,
                a.label_grams,
                a.bitmaps,
                g.gram,
                func.sum(g.n),
                func.min(g.lo),
                func.max(g.hi),
                null().label("label"),
            )
            .outerjoin(g, and_(*counted))
            .where(a.account_id == bindparam("account_id"))
            .group_by(a.no, a.label_grams, a.bitmaps, g.gram)
        )
        if not search.labels:
            return found
        # The labels' counts in the same round trip (the account's, if it keeps them).
        labelled = (
            select(
                a.no, a.label_grams, a.bitmaps, lg.gram, func.sum(lg.n), null(), null(), lg.label
            )
            .join(
                lg,
                and_(
                    lg.account_no == a.no,
                    _one_of(session, lg.label, "labels"),
                    _one_of(session, lg.gram, "grams"),
                ),
            )
            .where(a.account_id == bindparam("account_id"))
            .group_by(a.no, a.label_grams, a.bitmaps, lg.gram, lg.label)
        )
        return union_all(found, labelled)

    # One round trip: the account's number, and the counts of its grams (and labels),
    # each the sum of its types' and stripes' rows (migration 0009).
    values: dict[str, Any] = {"account_id": search.account_id, "grams": ["", *pieces]}
    if search.type:
        values["type"] = search.type
    if search.labels:
        values["labels"] = [f"{key}={value}" for key, value in search.labels.items()]
    shape = ("stats", dialect(session), bool(search.type), bool(search.labels))
    rows = session.execute(_built(shape, build), values).all()
    if not rows:
        return _Stats(None, 0, 0, True)
    account_no, label_grams, kept = rows[0][0], rows[0][1], bool(rows[0][2])
    found = {
        gram: (int(n), lo, hi)
        for _, _, _, gram, n, lo, hi, label in rows
        if gram is not None and label is None
    }
    scope = found[""][0] if "" in found else 0
    counts = {piece: found.get(piece, (0, "", "")) for piece in pieces or [""]}
    matches = min(n for n, _, _ in counts.values())
    exact = len(search.needle) <= grams.MAX_GRAM
    walk_label, walk_scope = None, scope
    if search.labels and matches:
        # The label gram counts know nothing of types, and one label at a time.
        exact = label_grams and len(search.labels) == 1 and not search.type and exact
        sizes = dict.fromkeys(search.labels.items(), scope)
        if label_grams:
            labelled = {(label, gram): n for *_, gram, n, _, _, label in rows if label is not None}
            label_matches, sizes = _label_counts(labelled, search.labels, pieces)
            matches = min(matches, label_matches)
        if not search.type:
            walk_label = min(sizes, key=sizes.__getitem__)
            walk_scope = sizes[walk_label]
    if matches == 0:
        return _Stats(account_no, scope, 0, True)
    bounds: dict[str, Any] = {"walk_label": walk_label, "walk_scope": walk_scope}
    if kept and len(search.needle) >= grams.MAX_GRAM:
        bounds["bitmaps"] = True
        bounds["weights"] = {piece: n for piece, (n, _, _) in counts.items()}
    if pieces:
        bounds["lo"] = max(lo for _, lo, _ in counts.values())
        bounds["hi"] = min(hi for _, _, hi in counts.values())
        bounds["probes"] = _probes(search.needle, pieces)
    return _Stats(account_no, scope, matches, exact, **bounds)


def _label_counts(
    found: dict[tuple[str, str], int], labels: dict[str, str], pieces: list[str]
) -> tuple[int, dict[tuple[str, str], int]]:
    """At most how many profiles with these labels hold these pieces (the fewest of any
    pair), and how many profiles have each label, from the label gram counts `found` by
    (label, gram)."""
    wanted = {f"{key}={value}": (key, value) for key, value in labels.items()}
    matches = min(found.get((label, gram), 0) for label in wanted for gram in pieces or [""])
    return matches, {item: found.get((label, ""), 0) for label, item in wanted.items()}


def _probes(needle: str, pieces: list[str]) -> tuple[str, ...]:
    """The needle's pieces of letters and digits only, else the needle if pg_trgm can use it.

    pg_trgm pads the words of a pattern: "edsger iyer" also looks up "er " and
    "  i", the ends and starts of a tenth of all words. Its pieces "edsg" ...
    "iyer" look up inner trigrams only, and the needle is tested whole anyway.
    Pieces that hold a single trigram between them hardly narrow anything down:
    "666666@" has the one piece "6666", that is "666", in 3,900 profiles at a
    million; the whole needle adds the word end "66 " and leaves 1,209.
    """
    inner = tuple(piece for piece in pieces if len(piece) >= 3 and piece.isalnum())
    if not inner:
        return (needle,) if _has_trigram(needle) else ()
    trigrams = {piece[i : i + 3] for piece in inner for i in range(len(piece) - 2)}
    if len(trigrams) == 1 and needle not in inner and _has_trigram(needle):
        return (*inner, needle)
    return inner


def _contains(
    session: Session, haystack: ColumnElement[str], needle: str | ColumnElement[str]
) -> ColumnElement[bool]:
    """A substring test no trigram index can serve, so the planner keeps to the name order."""
    function = func.strpos if dialect(session) == "postgresql" else func.instr
    return function(haystack, needle) > 0


def _matches(
    session: Session,
    *,
    needle: bool,
    labels: int,
    id_: ColumnElement[str],
    search_text: ColumnElement[str],
) -> list[ColumnElement[bool]]:
    """The needle's and the labels' tests of an entry, their values bound (see _values)."""
    conditions = [_contains(session, search_text, bindparam("needle"))] if needle else []
    for n in range(labels):
        conditions.append(
            exists().where(
                ProfileLabel.profile_id == id_,
                ProfileLabel.account_id == bindparam("account_id"),
                ProfileLabel.key == bindparam(f"key_{n}"),
                ProfileLabel.value == bindparam(f"value_{n}"),
            )
        )
    return conditions


def _values(search: SearchFilter) -> dict[str, Any]:
    """The values of a search's scope and tests, as the built statements bind them."""
    values: dict[str, Any] = {"account_id": search.account_id, "needle": search.needle}
    if search.type:
        values["type"] = search.type
    for n, (key, value) in enumerate(search.labels.items()):
        values[f"key_{n}"], values[f"value_{n}"] = key, value
    return values


@dataclass(frozen=True)
class _Order:
    """Index entries that list profiles in the contract's order, with their search text:
    the account's, the account's of one type, or one label's rows (profile_labels carry
    their profile's name_key and search_text, migration 0006)."""

    kind: str  # "account", "type" or "label"
    # What the entries still have to be tested for (the search less the walked label).
    rest: SearchFilter
    # The values of the bound parameters: the scope's (see _order_columns) and the tests'.
    values: dict[str, Any]


def _order(search: SearchFilter, stats: _Stats) -> _Order:
    if stats.walk_label is None:
        return _Order("type" if search.type else "account", search, _values(search))
    key, value = stats.walk_label
    rest = replace(search, labels={k: v for k, v in search.labels.items() if k != key})
    return _Order("label", rest, {**_values(rest), "label_key": key, "label_value": value})


def _order_columns(
    kind: str,
) -> tuple[ColumnElement[str], ColumnElement[str], ColumnElement[str], list[ColumnElement[bool]]]:
    """id, name_key and search_text of an order's entries, and the conditions of its scope."""
    if kind == "label":
        label = ProfileLabel
        scope = [
            label.account_id == bindparam("account_id"),
            label.key == bindparam("label_key"),
            label.value == bindparam("label_value"),
        ]
        return label.profile_id, label.name_key, label.search_text, scope
    scope = [Profile.account_id == bindparam("account_id")]
    if kind == "type":
        scope.append(Profile.type == bindparam("type"))
    return Profile.id, Profile.name_key, Profile.search_text, scope


def _bounded(
    name_key: ColumnElement[str], id_: ColumnElement[str], *, start: bool, stop: bool
) -> list[ColumnElement[bool]]:
    """Entries after the parameters start_name and start_id, up to the name key stop."""
    conditions = []
    if start:
        after = tuple_(bindparam("start_name", type_=String), bindparam("start_id", type_=String))
        conditions.append(tuple_(name_key, id_) > after)
    if stop:
        conditions.append(name_key <= bindparam("stop"))
    return conditions


def _bounds(start: tuple[str, str] | None, stop: str | None) -> dict[str, str]:
    values = {"stop": stop} if stop is not None else {}
    if start is not None:
        values["start_name"], values["start_id"] = start
    return values


def _has_trigram(needle: str) -> bool:
    """Whether pg_trgm can take a trigram from the needle (three letters or digits in a row)."""
    run = 0
    for char in needle:
        run = run + 1 if char.isalnum() else 0
        if run == 3:
            return True
    return False


def _indexed(session: Session, search: SearchFilter, stats: _Stats) -> bool:
    """Whether the trigram index can list candidates for this search."""
    if search.labels:
        return True
    if dialect(session) == "postgresql":
        return bool(stats.probes)
    return len(search.needle) >= 3


def _fts_query(session: Session, search: SearchFilter) -> str | None:
    """The FTS5 query of a search, or None when a type or label it names was never seen."""
    wanted = [f"type:{search.type}"] if search.type else []
    wanted += [f"label:{key}={value}" for key, value in search.labels.items()]
    ids: dict[str, int] = {}
    if wanted:
        found = select(_facets.c.facet, _facets.c.id).where(_facets.c.facet.in_(wanted))
        ids = {facet: facet_id for facet, facet_id in session.execute(found)}
    if len(ids) < len(wanted):
        return None
    phrases = []
    if len(search.needle) >= 3:
        phrases.append('body : "' + search.needle.replace('"', '""') + '"')
    phrases += [f'facets : "{facet_token(ids[facet])}"' for facet in wanted]
    return " AND ".join(phrases)


@dataclass(frozen=True)
class _Lookup:
    """What the trigram index is asked for a search: the shape of its statements (see
    _indexed_statement) and the values they bind."""

    shape: tuple[Any, ...]
    values: dict[str, Any]


def _read_lookup(session: Session, search: SearchFilter, stats: _Stats) -> _Lookup | None:
    if dialect(session) == "postgresql":
        values: dict[str, Any] = {"account_id": search.account_id}
        for n, probe in enumerate(stats.probes):
            escaped = probe.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            values[f"probe_{n}"] = f"%{escaped}%"
        if search.labels:
            values["labels"] = search.labels
        if search.type:
            values["type"] = search.type
        if search.needle:
            values["needle"] = search.needle
        shape = (len(stats.probes), bool(search.labels), bool(search.type), bool(search.needle))
        return _Lookup(("postgresql", *shape), values)
    query = _fts_query(session, search)
    if query is None:
        return None
    first = stats.account_no << DOC_BITS
    values = {"fts": query, "first": first, "last": first + (1 << DOC_BITS) - 1}
    # FTS5 takes no needle shorter than three characters: it is tested on the profile.
    short = 0 < len(search.needle) < 3
    if short:
        values["needle"] = search.needle
    return _Lookup(("sqlite", short), values)


def _indexed_statement(
    session: Session, shape: tuple[Any, ...], selected: str, *, start: bool = False
) -> Select[Any]:
    """The matches the trigram index finds for a lookup of this shape: their (name_key, id)
    ("matches"), how many there are ("count"), or the first `limit` of them in name order
    ("page": rows of PAGE_COLUMNS on PostgreSQL, ids on SQLite), after the parameters
    start_name and start_id if `start`.
    """

    def build() -> Select[Any]:
        if shape[0] == "sqlite" and selected == "count" and not shape[1]:
            # FTS5 counts its own matches, without looking their documents up.
            return select(func.count()).select_from(_fts_docids().subquery())
        matches = (_pg_matches if shape[0] == "postgresql" else _sqlite_matches)(session, shape)
        if selected == "matches":
            return matches
        if selected == "count":
            return select(func.count()).select_from(matches.subquery())
        found = matches.subquery("matches")
        page = (
            select(found.c.id)
            .where(*_bounded(found.c.name_key, found.c.id, start=start, stop=False))
            .order_by(found.c.name_key, found.c.id)
            .limit(bindparam("limit"))
        )
        if shape[0] == "sqlite":
            return page
        # The rows in the same statement, as a walk's window has them (see _window_statement).
        ids = page.subquery("page")
        return (
            select(*PAGE_COLUMNS)
            .join_from(ids, Profile, Profile.id == ids.c.id)
            .order_by(Profile.name_key, Profile.id)
        )

    return _built(("indexed", selected, start, *shape), build)


def _fts_docids() -> Select[tuple[int]]:
    """The FTS5 documents that match the parameter fts, between the parameters first and last."""
    return select(_fts.c.rowid).where(
        _fts.c.profile_search_fts.op("MATCH")(bindparam("fts")),
        _fts.c.rowid.between(bindparam("first"), bindparam("last")),
    )


def _sqlite_matches(session: Session, shape: tuple[Any, ...]) -> Select[tuple[str, str]]:
    _, short = shape
    query = select(docs.c.name_key, docs.c.profile_id.label("id")).where(
        docs.c.docid.in_(_fts_docids())
    )
    if short:
        query = query.join(Profile, Profile.id == docs.c.profile_id).where(
            _contains(session, Profile.search_text, bindparam("needle"))
        )
    return query


def _pg_matches(session: Session, shape: tuple[Any, ...]) -> Select[tuple[str, str]]:
    """Profiles of any account the GIN index finds for the needle's probes and the labels,
    then those of the search.

    MATERIALIZED keeps the account and type conditions out of the candidates: there,
    the planner would combine the index with the account's B-tree, a bitmap of the
    whole account. The whole needle is tested on what the index finds.
    """
    _, probes, labels, type_, needle = shape
    conditions = [
        Profile.search_text.like(bindparam(f"probe_{n}", type_=String), escape="\\")
        for n in range(probes)
    ]
    if labels:
        conditions.append(Profile.labels.op("@>")(bindparam("labels", type_=JSONB)))
    found = (
        select(Profile.id, Profile.account_id, Profile.type, Profile.name_key, Profile.search_text)
        .where(*conditions)
        .cte("candidates")
        .prefix_with("MATERIALIZED")
    )
    tests = [found.c.account_id == bindparam("account_id")]
    if type_:
        tests.append(found.c.type == bindparam("type"))
    if needle:
        tests.append(_contains(session, found.c.search_text, bindparam("needle")))
    return select(found.c.name_key, found.c.id).where(*tests)


class Plan:
    """One search's plan in one transaction: count its matches, then read its pages.

    Made once per request; what the count fetched (few enough matches to sort) is
    kept for the page asked next.
    """

    def __init__(self, session: Session, search: SearchFilter) -> None:
        self._session = session
        self._search = search
        self._stats = _read_stats(session, search)
        self._lookup: _Lookup | None = None
        self._looked_up = False
        # The (name_key, id) of every match, sorted, when the count fetched them.
        self._matches: list[tuple[str, str]] | None = None
        self._found: bitmaps.Found | None = None
        self._found_done = False

    def count(self) -> int:
        """How many profiles match."""
        session, search, stats = self._session, self._search, self._stats
        if stats.matches == 0:
            return 0
        if stats.exact:
            return stats.matches
        found = self._found_once()
        if found is not None:
            if found.total <= REMEMBERED_MATCHES:
                self._matches = bitmaps.keys_of(
                    session, stats.account_no or 0, search.account_id, found.docs
                )
            return found.total
        if stats.scope <= SMALL_SCOPE or not _indexed(session, search, stats):
            counted = _walk_statement(session, search, "count", start=False, stop=False)
            return session.scalar(counted, _values(search))
        lookup = self._lookup_once()
        if lookup is None:
            return 0
        if stats.matches <= REMEMBERED_MATCHES:
            # Few enough to fetch: the first page then sorts them instead of asking again.
            query = _indexed_statement(session, lookup.shape, "matches")
            self._matches = sorted(
                (name_key, profile_id)
                for name_key, profile_id in session.execute(query, lookup.values)
            )
            return len(self._matches)
        return session.scalar(_indexed_statement(session, lookup.shape, "count"), lookup.values)

    def page(
        self, *, after: tuple[str, str] | None, limit: int, total: int | None = None
    ) -> list[Row[Any]]:
        """Up to `limit` matches in (name_key, id) order, starting after `after`, as rows of
        PAGE_COLUMNS.

        `total`, the exact number of matches when the caller knows it, sharpens the
        choice of plan (the gram counts know nothing of labels).
        """
        session, search, stats = self._session, self._search, self._stats
        matches = stats.matches if total is None else min(total, stats.matches)
        if matches == 0:
            return []
        start = after
        if stats.lo is not None and (start is None or start < (stats.lo, "")):
            # Nothing before the lowest name key that holds the needle's grams can match.
            start = (stats.lo, "")
        if stats.scope <= SMALL_SCOPE or not _indexed(session, search, stats):
            return _walk_rows(session, search, start=start, stop=stats.hi, limit=limit)
        # Walk the label's rows when the search names one (and no type), else the account's.
        order = _order(search, stats)
        expected = limit * stats.walk_scope / matches
        indexed_cost = matches * CANDIDATE_COST[dialect(session)]
        if stats.bitmaps:
            indexed_cost *= KEYED_FACTOR[dialect(session)]
        if expected > indexed_cost:
            return self._candidates(start=start, limit=limit)
        rows: list[Row[Any]] = []
        walked, reach = 0, max(MIN_WALK_BUDGET, int(WALK_FACTOR * expected))
        while True:
            rows += _window(
                session, order, start=start, stop=stats.hi, reach=reach, limit=limit - len(rows)
            )
            if len(rows) == limit:
                return rows
            # Where the window ended, from the index alone; None: the names ran out in it.
            boundary = session.execute(
                _boundary_statement(
                    session, order.kind, start=start is not None, stop=stats.hi is not None
                ),
                {**order.values, **_bounds(start, stats.hi), "reach": reach - 1},
            ).one_or_none()
            if boundary is None:
                return rows
            start, walked, reach = (boundary[0], boundary[1]), walked + reach, 2 * reach
            if walked >= HANDOVER * indexed_cost:
                break
        # The matches are sparser here than on average: sort the candidates past the walk.
        return rows + self._candidates(start=start, limit=limit - len(rows))

    def _found_once(self) -> bitmaps.Found | None:
        """The matches from the account's bitmaps, if it keeps them and they serve the
        needle (see _read_stats)."""
        stats, search = self._stats, self._search
        if not self._found_done and stats.bitmaps and stats.account_no is not None:
            self._found = bitmaps.find(
                self._session,
                stats.account_no,
                needle=search.needle,
                type_=search.type,
                labels=search.labels,
                weights=stats.weights,
            )
        self._found_done = True
        return self._found

    def _lookup_once(self) -> _Lookup | None:
        """The trigram index's lookup (None: nothing can match); on SQLite it reads the ids
        of the facets the search names, so it is worked out once."""
        if not self._looked_up:
            self._lookup = _read_lookup(self._session, self._search, self._stats)
            self._looked_up = True
        return self._lookup

    def _candidates(self, *, start: tuple[str, str] | None, limit: int) -> list[Row[Any]]:
        """The first `limit` matches after `start`, from the bitmaps' or the trigram index's
        candidates."""
        session = self._session
        if self._matches is None:
            # The bitmaps list the matches exactly: their keys, where the trigram index
            # would list a superset to test.
            matches = self._found_once()
            if matches is not None:
                self._matches = bitmaps.keys_of(
                    session, self._stats.account_no or 0, self._search.account_id, matches.docs
                )
        if self._matches is not None:
            found = self._matches
            later = found if start is None else found[bisect_right(found, start) :]
            return _load(session, [profile_id for _, profile_id in later[:limit]])
        lookup = self._lookup_once()
        if lookup is None:
            return []
        page = _indexed_statement(session, lookup.shape, "page", start=start is not None)
        return _page_rows(session, page, {**lookup.values, **_bounds(start, None), "limit": limit})


def _one_of(session: Session, column: ColumnElement[str], name: str) -> ColumnElement[bool]:
    """`column IN` the list bound to `name`; on PostgreSQL `= ANY` of one array
    parameter, whose statement psycopg parses once and prepares, where a page's ids
    rendered as literals would be cast and parsed anew on every call."""
    if dialect(session) == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(String)))
    return column.in_(bindparam(name, expanding=True))


class _Statements:
    """Every search statement built, by shape (dialect, kind, which parameters it binds).

    A statement holds bound parameters and no values, so one built statement serves
    every search and thread of the process: building a statement and its cache key
    anew per call cost SQLAlchemy about as much as the database's work
    (bench/README.md). Shapes are few; beyond `limit`, the oldest is dropped.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._built: OrderedDict[tuple[Any, ...], Any] = OrderedDict()

    def get(self, shape: tuple[Any, ...], build: Callable[[], _T]) -> _T:
        statement = self._built.get(shape)
        if statement is None:
            statement = self._built[shape] = build()
            if len(self._built) > self._limit:
                self._built.popitem(last=False)
        return statement


_statements = _Statements(limit=1000)
_built = _statements.get


def _load(session: Session, ids: list[str]) -> list[Row[Any]]:
    """The profiles of these ids, in this order."""
    if not ids:
        return []
    loaded = _built(
        ("load", dialect(session)),
        lambda: select(*PAGE_COLUMNS).where(_one_of(session, Profile.id, "ids")),
    )
    found = {row.id: row for row in session.execute(loaded, {"ids": ids})}
    return [found[profile_id] for profile_id in ids]


def _walk_rows(
    session: Session,
    search: SearchFilter,
    *,
    start: tuple[str, str] | None,
    stop: str | None,
    limit: int,
) -> list[Row[Any]]:
    """The first `limit` matches in name order after `start`, as rows."""
    values = {**_values(search), **_bounds(start, stop), "limit": limit}
    if dialect(session) == "sqlite" and (search.needle or search.labels):
        # The ids come from the covering index; only the page's rows are read.
        walk = _walk_statement(
            session, search, "ids", start=start is not None, stop=stop is not None
        )
        return _load(session, list(session.scalars(walk, values)))
    walk = _walk_statement(session, search, "rows", start=start is not None, stop=stop is not None)
    return list(session.execute(walk, values))


def _walk_statement(
    session: Session, search: SearchFilter, selected: str, *, start: bool, stop: bool
) -> Select[Any]:
    """The matches of a search in name order ("ids" or "rows" of them), or their "count"."""
    shape = (
        "walk",
        dialect(session),
        selected,
        bool(search.type),
        start,
        stop,
        bool(search.needle),
        len(search.labels),
    )

    def build() -> Select[Any]:
        id_, name_key, search_text, scope = _order_columns("type" if search.type else "account")
        conditions = [
            *scope,
            *_bounded(name_key, id_, start=start, stop=stop),
            *_matches(
                session,
                needle=bool(search.needle),
                labels=len(search.labels),
                id_=id_,
                search_text=search_text,
            ),
        ]
        if selected == "count":
            return select(func.count()).select_from(Profile).where(*conditions)
        columns = (Profile.id,) if selected == "ids" else PAGE_COLUMNS
        ordered = select(*columns).where(*conditions).order_by(name_key, id_)
        return ordered.limit(bindparam("limit"))

    return _built(shape, build)


def _window(
    session: Session,
    order: _Order,
    *,
    start: tuple[str, str] | None,
    stop: str | None,
    reach: int,
    limit: int,
) -> list[Row[Any]]:
    """The first `limit` matches among the next `reach` entries of `order` after `start`,
    as rows of PAGE_COLUMNS: one pass over its index, which stops at the limit."""
    rest = order.rest
    shape = (
        "window",
        dialect(session),
        order.kind,
        start is not None,
        stop is not None,
        bool(rest.needle),
        len(rest.labels),
    )
    statement = _built(shape, lambda: _window_statement(session, *shape[2:]))
    values = {**order.values, **_bounds(start, stop), "reach": reach, "limit": limit}
    return _page_rows(session, statement, values)


def _page_rows(session: Session, statement: Select[Any], values: dict[str, Any]) -> list[Row[Any]]:
    """The rows of PAGE_COLUMNS a page's statement finds: it selects their ids on SQLite,
    loaded after, and the rows themselves on PostgreSQL (see _window_statement)."""
    if dialect(session) == "sqlite":
        return _load(session, list(session.scalars(statement, values)))
    return list(session.execute(statement, values))


def _window_statement(
    session: Session, kind: str, start: bool, stop: bool, needle: bool, labels: int
) -> Select[Any]:
    id_, name_key, search_text, scope = _order_columns(kind)
    window = (
        select(id_.label("id"), name_key.label("name_key"), search_text.label("search_text"))
        .where(*scope, *_bounded(name_key, id_, start=start, stop=stop))
        .order_by(name_key, id_)
        .limit(bindparam("reach"))
        .subquery("window")
    )
    conditions = _matches(
        session, needle=needle, labels=labels, id_=window.c.id, search_text=window.c.search_text
    )
    matching = select(window.c.id).where(*conditions)
    if dialect(session) == "sqlite":
        # The ids, as its co-routine yields them, in order (an ORDER BY would sort the
        # whole window). Joined to their rows, SQLite is slower than loading them after
        # (bench/README.md).
        return matching.limit(bindparam("limit"))
    # The order is free when the plan keeps the window's, which PostgreSQL knows; the rows
    # in the same statement, one round trip fewer than loading them after.
    found = (
        matching.order_by(window.c.name_key, window.c.id)
        .limit(bindparam("limit"))
        .subquery("found")
    )
    return (
        select(*PAGE_COLUMNS)
        .join_from(found, Profile, Profile.id == found.c.id)
        .order_by(Profile.name_key, Profile.id)
    )


def _boundary_statement(
    session: Session, kind: str, *, start: bool, stop: bool
) -> Select[tuple[str, str]]:
    """The (name_key, id) of the entry `reach` after `start` in an order."""

    def build() -> Select[tuple[str, str]]:
        id_, name_key, _, scope = _order_columns(kind)
        return (
            select(name_key, id_)
            .where(*scope, *_bounded(name_key, id_, start=start, stop=stop))
            .order_by(name_key, id_)
            .offset(bindparam("reach"))
            .limit(1)
        )

    return _built(("boundary", dialect(session), kind, start, stop), build)
