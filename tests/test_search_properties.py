"""Property: walking every page of any search returns exactly the brute-force result.

Each example makes a fresh account through direct database helpers, so examples
never see each other's profiles; the only fixture is the session's server, which
hypothesis may share across examples.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cadenya_server.profiles import importer, repository
from cadenya_server.profiles.schemas import STORED_TYPES, ProfileType
from cadenya_server.profiles.search import planner
from conftest import Server, make_account
from search_model import PLANS, expected, force_plan, label_filter, planner_pages, rows_of, walk

# Letters whose case mapping is tricky (ß/ẞ, İ/ı, final sigma, Kelvin sign), the
# LIKE metacharacters, and separators that appear in names and emails.
ALPHABET = "aAbBzZ%_\\ .-ëËłŁßẞİıΣσςЖжΩω\u212a\u017f"
LOCAL_ALPHABET = ALPHABET.replace(" ", "")
NAME_POOL = ["Zoë", "ZOË", "zoë", "Łukasz", "ŁUKASZ", "100%", "a_b", "a\\b", "", "Σίσυφος", "Жанна"]
LABEL_KEYS = ["team", "env", "cadenya.com/team"]
LABEL_VALUES = ["a", "b", "x-1"]
TYPES = [None, "PROFILE_TYPE_UNSPECIFIED", "PROFILE_TYPE_USER", "PROFILE_TYPE_API_KEY"]
TYPES += ["PROFILE_TYPE_SYSTEM"]
CASES = [str, str.upper, str.lower, str.swapcase]
ADMIN_NAME = "Ada Admin"  # make_account's administrator, in every account

labels_strategy = st.dictionaries(
    st.sampled_from(LABEL_KEYS), st.sampled_from(LABEL_VALUES), max_size=3
)
name_strategy = st.builds(
    lambda base, case: case(base).strip(),
    st.one_of(st.sampled_from(NAME_POOL), st.text(ALPHABET, max_size=8)),
    st.sampled_from(CASES),
)
profile_strategy = st.fixed_dictionaries(
    {
        "name": name_strategy,
        # The "+n" suffix added below keeps emails unique within the account.
        "email": st.one_of(st.just(""), st.text(LOCAL_ALPHABET, max_size=6)),
        "type": st.sampled_from(["user", "api_key", "system"]),
        "labels": labels_strategy,
    }
)


def substrings(text: str) -> st.SearchStrategy[str]:
    return st.tuples(st.integers(0, len(text)), st.integers(0, len(text))).map(
        lambda ends: text[min(ends) : max(ends)]
    )


def searches(haystacks: list[str]) -> st.SearchStrategy[dict]:
    """Query parameters: substrings of stored text find something, free text rarely does."""
    text = st.one_of(
        st.text(ALPHABET, max_size=3),
        st.sampled_from(["%", "_", "\\", "%a", "a_", "\\%", "ß", "SS", "İ", "σ"]),
        st.sampled_from(haystacks).flatmap(substrings),
    )
    return st.fixed_dictionaries(
        {
            "query": st.builds(lambda text, case: case(text), text, st.sampled_from(CASES)),
            "type": st.sampled_from(TYPES),
            "labels": st.dictionaries(
                st.sampled_from(LABEL_KEYS), st.sampled_from(LABEL_VALUES), max_size=2
            ),
            "limit": st.one_of(st.none(), st.integers(1, 8)),
        }
    )


@settings(max_examples=25, deadline=None)
@given(profiles=st.lists(profile_strategy, max_size=25), data=st.data())
def test_walking_every_page_returns_the_brute_force_result(
    server: Server, profiles: list[dict], data: st.DataObject
) -> None:
    tenant = make_account(server, name="Property Co", domain="prop.test")
    emails = [f"{p['email']}+{n}@ëxample.com" if p["email"] else "" for n, p in enumerate(profiles)]
    with server.runtime.db.transaction() as session:
        for profile, email in zip(profiles, emails, strict=True):
            repository.add(
                session,
                account_id=tenant.id,
                type=profile["type"],
                name=profile["name"],
                email=email,
                labels=profile["labels"],
            )
    rows = rows_of(server, tenant.id)
    by_id = {r.id: r for r in rows}
    http = server.http(tenant.api_key)
    # Drawn from the examples' own data, never from the database: the admin's email and
    # the rows' order change from run to run, and hypothesis replays need the same draws.
    haystacks = [ADMIN_NAME] + [p["name"] for p in profiles] + [e for e in emails if e]
    # Several searches per account: making the account is the costly part.
    for search in data.draw(st.lists(searches(haystacks), min_size=3, max_size=3)):
        got = walk(
            http,
            max_pages=len(rows) + 2,
            query=search["query"],
            type=search["type"],
            labels=label_filter(search["labels"]) or None,
            limit=search["limit"],
        )
        want = expected(rows, query=search["query"], type=search["type"], labels=search["labels"])
        assert got.ids == want
        assert set(got.totals) == {len(want)}
        for item in got.items:
            row = by_id[item["metadata"]["id"]]
            assert item["spec"] == {"type": row.type, "email": row.email, "name": row.name}
            assert item["metadata"]["labels"] == row.labels


# Long names, local parts with punctuation and digits, and a few domains, each shared
# by many profiles: needles cut from them are longer than any gram and match many.
LONG_NAMES = ["Müller-Lüdenscheidt", "Wiśniewska Kowalski", "Nørgaard Åberg", "Σίσυφος Παπαδάκη"]
LONG_NAMES += ["O'Connor ẞmith", "İlker Şahin-Öztürk"]
LOCAL_PARTS = ["j.mueller", "anna-marie.99", "o_connor.2024", "zoë.k7", "ŁUKASZ.NOWAK.1"]
DOMAINS = ["initech.com", "zoë-design.eu", "hooli.xyz"]
SHORTEST = 5

long_profile_strategy = st.fixed_dictionaries(
    {
        "name": st.builds(
            lambda base, case: case(base), st.sampled_from(LONG_NAMES), st.sampled_from(CASES)
        ),
        "local": st.sampled_from(LOCAL_PARTS),
        "domain": st.sampled_from(DOMAINS),
        "type": st.sampled_from(["user", "api_key", "system"]),
        "labels": labels_strategy,
    }
)


def long_pieces(text: str) -> st.SearchStrategy[str]:
    """Substrings of at least SHORTEST characters, the whole text among them."""
    return st.integers(0, len(text) - SHORTEST).flatmap(
        lambda start: st.integers(start + SHORTEST, len(text)).map(lambda end: text[start:end])
    )


@settings(max_examples=15, deadline=None)
@given(profiles=st.lists(long_profile_strategy, min_size=1, max_size=30), data=st.data())
def test_long_needles_from_the_profiles_own_text_find_the_brute_force_result(
    server: Server, profiles: list[dict], data: st.DataObject
) -> None:
    tenant = make_account(server, name="Long Needles", domain="long.test")
    emails = [f"{p['local']}.{n}@{p['domain']}" for n, p in enumerate(profiles)]
    drawn = list(zip(profiles, emails, strict=True))
    # Long needles are counted from bitmaps: the first half of the profiles in their
    # base, the second in the dirt their writes leave until a compactor folds it.
    for part in (drawn[: len(drawn) // 2], drawn[len(drawn) // 2 :]):
        with server.runtime.db.transaction() as session:
            for profile, email in part:
                repository.add(
                    session,
                    account_id=tenant.id,
                    type=profile["type"],
                    name=profile["name"],
                    email=email,
                    labels=profile["labels"],
                )
        importer.keep_bitmaps(db=server.runtime.db, account_id=tenant.id)
    rows = rows_of(server, tenant.id)
    http = server.http(tenant.api_key)
    # From the drawn data, not the rows: see the first test.
    texts = [ADMIN_NAME] + [
        t for p, e in zip(profiles, emails, strict=True) for t in (p["name"], e)
    ]
    haystacks = [t for t in texts if len(t) >= SHORTEST]
    needles = st.builds(
        lambda text, case: case(text),
        st.sampled_from(haystacks).flatmap(long_pieces),
        st.sampled_from(CASES),
    )
    for needle in data.draw(st.lists(needles, min_size=3, max_size=3)):
        type_ = data.draw(st.sampled_from(TYPES))
        labels = data.draw(
            st.dictionaries(st.sampled_from(LABEL_KEYS), st.sampled_from(LABEL_VALUES), max_size=1)
        )
        want = expected(rows, query=needle, type=type_, labels=labels)
        got = walk(http, query=needle, type=type_, labels=label_filter(labels) or None, limit=3)
        assert got.ids == want
        assert set(got.totals) == {len(want)}
        # The server scans an account this small: the plans of a large one, forced here.
        search = planner.SearchFilter(
            account_id=tenant.id,
            needle=needle.lower(),
            type=STORED_TYPES.get(ProfileType(type_)) if type_ else None,
            labels=labels,
        )
        for plan in PLANS:
            with pytest.MonkeyPatch.context() as patch:
                force_plan(patch, plan)
                assert planner_pages(server, search) == (want, len(want)), plan
