"""The profile search as plain Python, and walking its pages over HTTP.

The search tests compare the server with this brute-force model over the same
rows, so whatever the server does inside, it must agree with a list
comprehension.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from pyroaring import BitMap
from sqlalchemy import func, select
from sqlalchemy import text as sql

from cadenya_server.models import (
    Profile,
    ProfileLabel,
    ProfileSearchAccount,
    ProfileSearchGram,
    ProfileSearchLabelGram,
)
from cadenya_server.profiles.schemas import STORED_TYPES, WIRE_TYPES, ProfileType
from cadenya_server.profiles.search import bitmaps, grams, planner
from conftest import Server

PATH = "/v1/account/profiles"
ALL_TYPES = (None, "PROFILE_TYPE_UNSPECIFIED")


@dataclass(frozen=True)
class Row:
    id: str
    name: str
    email: str
    type: str
    labels: Mapping[str, str] = field(default_factory=dict)


def rows_of(server: Server, account_id: str) -> list[Row]:
    """Every profile of the account as stored: the model's input."""
    with server.runtime.db.transaction(write=False) as session:
        return [
            Row(p.id, p.name, p.email, str(WIRE_TYPES[p.type]), dict(p.labels))
            for p in session.scalars(select(Profile).where(Profile.account_id == account_id))
        ]


def expected(
    rows: list[Row],
    *,
    query: str = "",
    type: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> list[str]:
    """The ids a search must return, in the order it must return them."""
    needle = query.lower()
    hits = [
        r
        for r in rows
        if (needle in r.name.lower() or needle in r.email.lower())
        and (type in ALL_TYPES or r.type == type)
        and all(r.labels.get(k) == v for k, v in (labels or {}).items())
    ]
    return [r.id for r in sorted(hits, key=lambda r: (r.name.lower(), r.id))]


def label_filter(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in labels.items())


@dataclass
class Walk:
    items: list[dict[str, Any]]
    totals: list[int]
    pages: int

    @property
    def ids(self) -> list[str]:
        return [item["metadata"]["id"] for item in self.items]


def walk(http: httpx.Client, *, max_pages: int = 2000, **params: Any) -> Walk:
    """Every page of a search, following nextCursor until it is empty."""
    params = {k: v for k, v in params.items() if v is not None}
    result = Walk(items=[], totals=[], pages=0)
    cursor = ""
    while result.pages < max_pages:
        response = http.get(PATH, params={**params, "cursor": cursor} if cursor else params)
        assert response.status_code == 200, response.text
        body = response.json()
        result.pages += 1
        result.items += body["items"]
        result.totals.append(body["pagination"]["total"])
        cursor = body["pagination"]["nextCursor"]
        if not cursor:
            return result
    raise AssertionError(f"still a nextCursor after {max_pages} pages")


# The index held against the profiles: the gram counts against a recount, and
# every plan the search can choose against the model. The accounts of the tests
# are small, so the plans are forced in the test's process; the server would scan.
NEVER = 10**9
PLANS = {
    "walk": {"CANDIDATE_COST": {"sqlite": NEVER, "postgresql": NEVER}},
    # The count fetches the candidates (there are few) and the page sorts them.
    "candidates": {"CANDIDATE_COST": {"sqlite": 0, "postgresql": 0}},
    # The page asks the index again, for those after where the walk stopped.
    "walk then candidates": {
        "CANDIDATE_COST": {"sqlite": NEVER, "postgresql": NEVER},
        "WALK_FACTOR": 0,
        "MIN_WALK_BUDGET": 2,
        "HANDOVER": 0,
        "REMEMBERED_MATCHES": 0,
    },
}


def force_plan(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setattr(planner, "SMALL_SCOPE", 0)
    for constant, value in PLANS[name].items():
        monkeypatch.setattr(planner, constant, value)


def planner_pages(server: Server, search: planner.SearchFilter, limit: int = 4) -> tuple[list, int]:
    """Every page of a search through the planner, as the service walks them."""
    with server.runtime.db.transaction(write=False) as session:
        plan = planner.Plan(session, search)
        total = plan.count()
        found: list[str] = []
        after = None
        while True:
            rows = plan.page(after=after, limit=limit + 1, total=total)
            found += [row.id for row in rows[:limit]]
            if len(rows) <= limit:
                return found, total
            after = (rows[limit - 1].name_key, rows[limit - 1].id)


def _needles(rows: list[Row]) -> list[str]:
    """Short and long pieces of what is stored, in upper case too, and strings nobody has."""
    texts = sorted({t for r in rows for t in (r.name, r.email) if t})
    cuts = ((0, 1), (1, 2), (2, 3), (0, 7))
    pieces = {text[start : start + size] for text in texts[::5] for start, size in cuts}
    pieces |= {piece.upper() for piece in sorted(pieces)[::4]}
    return [*sorted(pieces - {""}), "xyzq", "łuk", "%", "_", "\\", "ß", "@", "zoë k"]


def assert_index_matches(server: Server, account_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The account's gram counts equal a recount; every plan agrees with the model."""
    with server.runtime.db.transaction(write=False) as session:
        profiles = session.execute(
            select(Profile.type, Profile.name_key, Profile.search_text, Profile.labels).where(
                Profile.account_id == account_id
            )
        ).all()
        # Label rows carry their profile's text, for walks in a label's name order.
        label_rows = session.execute(
            select(
                ProfileLabel.key,
                ProfileLabel.value,
                ProfileLabel.name_key,
                ProfileLabel.search_text,
            ).where(ProfileLabel.account_id == account_id)
        ).all()
        # A count is the sum of its stripes' rows (PostgreSQL, migration 0009), which may
        # stay at zero.
        stored = {
            (type_, gram): (n, lo, hi)
            for gram, type_, n, lo, hi in session.execute(
                select(
                    ProfileSearchGram.gram,
                    ProfileSearchGram.type,
                    func.sum(ProfileSearchGram.n),
                    func.min(ProfileSearchGram.lo),
                    func.max(ProfileSearchGram.hi),
                )
                .join(ProfileSearchAccount, ProfileSearchAccount.no == ProfileSearchGram.account_no)
                .where(ProfileSearchAccount.account_id == account_id)
                .group_by(ProfileSearchGram.gram, ProfileSearchGram.type)
            )
            if n
        }
        label_grams = session.scalar(
            select(ProfileSearchAccount.label_grams).where(
                ProfileSearchAccount.account_id == account_id
            )
        )
        stored_labels = {
            (label, gram): n
            for label, gram, n in session.execute(
                select(
                    ProfileSearchLabelGram.label,
                    ProfileSearchLabelGram.gram,
                    func.sum(ProfileSearchLabelGram.n),
                )
                .join(
                    ProfileSearchAccount,
                    ProfileSearchAccount.no == ProfileSearchLabelGram.account_no,
                )
                .where(ProfileSearchAccount.account_id == account_id)
                .group_by(ProfileSearchLabelGram.label, ProfileSearchLabelGram.gram)
            )
            if n
        }
    assert sorted(label_rows) == sorted(
        (key, value, name_key, text)
        for _, name_key, text, labels in profiles
        for key, value in labels.items()
    )
    recount = Counter((type_, g) for type_, _, text, _ in profiles for g in grams.of_text(text))
    assert {key: n for key, (n, _, _) in stored.items()} == dict(recount)
    recount_labels = Counter(
        (f"{key}={value}", g)
        for _, _, text, labels in profiles
        for key, value in labels.items()
        for g in grams.of_text(text)
    )
    assert stored_labels == (dict(recount_labels) if label_grams else {})
    for type_, name_key, text, _ in profiles:
        for gram in grams.of_text(text):
            _, lo, hi = stored[type_, gram]
            assert lo <= name_key <= hi, (gram, name_key)

    rows = rows_of(server, account_id)
    labels = sorted({item for r in rows for item in r.labels.items()})[:2]
    searches = [(needle, None, {}) for needle in _needles(rows)]
    searches += [("", ProfileType.API_KEY, {}), ("key", ProfileType.API_KEY, {})]
    searches += [(n, None, dict([label])) for n in ("", "a", "ada", "zoë k") for label in labels]
    # Two labels of different keys: a walk of the one's rows tests the other.
    first_values: dict[str, str] = {}
    for key, value in sorted({item for r in rows for item in r.labels.items()}):
        first_values.setdefault(key, value)
    two_labels = dict(list(first_values.items())[:2])
    searches += [("o", ProfileType.USER, dict(labels)), ("o", None, two_labels)]
    searches += [("", None, two_labels), ("team", None, {"nobody": "x"})]
    for plan in PLANS:
        with monkeypatch.context() as patch:
            force_plan(patch, plan)
            for query, type_, wanted_labels in searches:
                search = planner.SearchFilter(
                    account_id=account_id,
                    needle=query.lower(),
                    type=STORED_TYPES[type_] if type_ else None,
                    labels=wanted_labels,
                )
                want = expected(rows, query=query, type=type_, labels=wanted_labels)
                assert planner_pages(server, search) == (want, len(want)), (plan, search)
    if keeps_bitmaps(server, account_id):
        # Whatever dirt was pending, folded in: the base equals a rebuild from scratch.
        bitmaps.compact_all(server.runtime.db)
        assert stored_bitmaps(server, account_id) == rebuilt_bitmaps(server, account_id)


def keeps_bitmaps(server: Server, account_id: str) -> bool:
    with server.runtime.db.transaction(write=False) as session:
        return bitmaps.kept(session, account_id)


def stored_bitmaps(server: Server, account_id: str) -> dict[tuple[str, int], list[int]]:
    """The account's base, with no dirt left."""
    with server.runtime.db.transaction(write=False) as session:
        no = session.scalar(
            select(ProfileSearchAccount.no).where(ProfileSearchAccount.account_id == account_id)
        )
        dirt = session.execute(
            sql("SELECT count(*) FROM profile_search_dirt WHERE account_no = :no"), {"no": no}
        ).scalar()
        assert dirt == 0
        rows = session.execute(
            sql("SELECT key, chunk, bits FROM profile_search_bitmaps WHERE account_no = :no"),
            {"no": no},
        )
        return {(key, chunk): list(BitMap.deserialize(bytes(bits))) for key, chunk, bits in rows}


def rebuilt_bitmaps(server: Server, account_id: str) -> dict[tuple[str, int], list[int]]:
    """The account's bitmaps as its profiles make them now, every place counted in plain
    Python (bitmaps.bitmaps_of finds them with numpy)."""
    with server.runtime.db.transaction(write=False) as session:
        no = session.scalar(
            select(ProfileSearchAccount.no).where(ProfileSearchAccount.account_id == account_id)
        )
        states = [
            state for part in bitmaps._account_states(session, account_id, no) for state in part
        ]
    found: dict[tuple[str, int], set[int]] = {}
    for doc, text, type_, labels in states:
        chunk = doc >> bitmaps.CHUNK_BITS
        for pos in range(len(text) - grams.MAX_GRAM + 1):
            gram = text[pos : pos + grams.MAX_GRAM]
            if "\n" not in gram:
                found.setdefault((gram, chunk), set()).add(pos << bitmaps.DOC_BITS | doc)
        facets = [bitmaps.type_key(type_)]
        facets += [bitmaps.label_key(key, value) for key, value in labels.items()]
        for facet in facets:
            found.setdefault((facet, chunk), set()).add(doc)
    return {slot: sorted(values) for slot, values in found.items()}
