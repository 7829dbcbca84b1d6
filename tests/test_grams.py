"""The gram counts of a batch of profiles, as the importer counts them."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cadenya_server.profiles import text
from cadenya_server.profiles.search import grams

_rows = st.lists(
    st.tuples(
        st.sampled_from(["user", "api_key", "system"]),
        st.text(alphabet="abcé ", max_size=8),
        st.text(alphabet="abé.@", max_size=8),
        st.dictionaries(st.sampled_from(["team", "region"]), st.sampled_from(["x", "y"])),
    ).map(
        lambda r: (r[0], text.name_key(r[1]), text.search_text(r[1], r[2]), r[3]),
    ),
    max_size=30,
)


def _recount(rows: list[grams.Row]) -> tuple[dict, dict, dict, dict]:
    """Profile by profile: the counts, lowest and highest name keys per type, label counts."""
    n: dict[str, Counter[str]] = defaultdict(Counter)
    lo: dict[str, dict[str, str]] = defaultdict(dict)
    hi: dict[str, dict[str, str]] = defaultdict(dict)
    labels: dict[str, Counter[str]] = defaultdict(Counter)
    for type_, name_key, search_text, row_labels in rows:
        for gram in grams.of_text(search_text):
            n[type_][gram] += 1
            lo[type_][gram] = min(lo[type_].get(gram, name_key), name_key)
            hi[type_][gram] = max(hi[type_].get(gram, name_key), name_key)
            for key, value in row_labels.items():
                labels[f"{key}={value}"][gram] += 1
    return dict(n), dict(lo), dict(hi), dict(labels)


@pytest.mark.parametrize(
    ("max_groups", "label_grams"), [(grams.MAX_GROUPS, True), (1, True), (1, False)]
)
@settings(max_examples=100, deadline=None)
@given(rows=_rows)
def test_a_batch_counts_as_its_profiles_one_by_one(
    max_groups: int, label_grams: bool, rows: list[grams.Row]
) -> None:
    labels: grams.LabelChanges | None = {} if label_grams else None
    with pytest.MonkeyPatch.context() as patch:
        # One group at most: the profiles of other types and label sets are strays, whose
        # labels are counted profile by profile.
        patch.setattr(grams, "MAX_GROUPS", max_groups)
        counted = grams.additions(rows, labels=labels)
    n, lo, hi, label_counts = _recount(rows)
    assert {t: dict(c.n) for t, c in counted.items()} == n
    assert {t: c.lo for t, c in counted.items()} == lo
    assert {t: c.hi for t, c in counted.items()} == hi
    if labels is not None:
        assert {label: dict(c) for label, c in labels.items() if +c} == label_counts
