"""The n-grams of the profile search: what the gram counts are keyed by.

Every profile counts once for each distinct substring of up to MAX_GRAM
characters of its search text (and once for "", the whole scope). The total of
a needle that short is then one lookup; a longer needle matches at most as
many profiles as its rarest MAX_GRAM-gram, which bounds the work of finding it.
The migration that creates the counts and the database triggers that maintain
them enumerate the same substrings in SQL.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache, lru_cache
from operator import itemgetter

from cadenya_server.profiles.text import SEPARATOR

MAX_GRAM = 4
# How many sets of labels `additions` counts in groups.
MAX_GROUPS = 1000


@cache
def _slices(length: int) -> tuple[slice, ...]:
    return tuple(
        slice(start, start + size)
        for size in range(2, MAX_GRAM + 1)
        for start in range(length - size + 1)
    )


# Names repeat (first and last names recombine); emails rarely do.
@lru_cache(maxsize=1 << 16)
def _of_name(name_key: str) -> frozenset[str]:
    return frozenset(_of_part(name_key))


def _of_part(part: str) -> set[str]:
    found = set(part)
    found.update(map(part.__getitem__, _slices(len(part))))
    return found


def of_text(search_text: str) -> set[str]:
    """Every gram a profile with this search text counts for."""
    # Grams across the name/email separator can never be asked for: no needle
    # holds a control character.
    name, _, email = search_text.partition(SEPARATOR)
    found = _of_part(email)
    found.update(_of_name(name))
    found.add("")
    return found


def of_needle(needle: str) -> list[str]:
    """The grams whose counts bound a needle: itself when short enough, else its pieces."""
    if len(needle) <= MAX_GRAM:
        return [needle]
    return sorted({needle[i : i + MAX_GRAM] for i in range(len(needle) - MAX_GRAM + 1)})


Row = tuple[str, str, str, dict[str, str]]
"""(type, name_key, search_text, labels) of a profile."""
LabelChanges = dict[str, Counter[str]]
"""Count changes per label (`key=value`) and gram."""


@dataclass
class Changes:
    """Count changes of one profile type: per gram, and the name keys counted in."""

    n: Counter[str] = field(default_factory=Counter)
    lo: dict[str, str] = field(default_factory=dict)
    hi: dict[str, str] = field(default_factory=dict)


def changes(
    *,
    added: Iterable[Row] = (),
    removed: Iterable[Row] = (),
    counted: Iterable[dict[str, Changes]] = (),
    labels: LabelChanges | None = None,
) -> dict[str, Changes]:
    """The gram count changes, per profile type, of adding and removing these rows.

    `counted`: those of more added rows, counted ahead by `additions`. `labels`:
    where to count the label gram changes too, if they are wanted.
    """
    result: dict[str, Changes] = defaultdict(Changes, additions(added, labels=labels))
    for part in counted:
        for type_, change in part.items():
            _merge(result[type_], change)
    gone: dict[str, Counter[str]] = defaultdict(Counter)
    for type_, _name_key, search_text, row_labels in removed:
        found = of_text(search_text)
        gone[type_].update(found)
        if labels is not None:
            for key, value in row_labels.items():
                labels.setdefault(f"{key}={value}", Counter()).subtract(found)
    for type_, counts in gone.items():
        result[type_].n.subtract(counts)
    return result


def additions(rows: Iterable[Row], *, labels: LabelChanges | None = None) -> dict[str, Changes]:
    """The gram count changes, per profile type, of adding these rows.

    `labels`: where to add the label gram changes too, if they are wanted.
    """
    result: dict[str, Changes] = defaultdict(Changes)
    # Profiles of one type and one set of labels add to the same counts: a profile's grams
    # are counted once, in its group, and each group into its type's counts and its
    # labels' at the end (once per profile for the type and again for each label: 8.2 s
    # for 100,000 profiles of the bench, 7.0 s in groups). Past MAX_GROUPS sets of labels,
    # a profile with a new one is counted directly.
    groups: dict[tuple[str, tuple[tuple[str, str], ...]], Counter[str]] = {}
    # A profile's grams are counted and dropped before the next profile's: holding a
    # batch's sets at once cost twice the time, in memory rather than in counting.
    # In name order, a gram's first profile gives its lowest name key, its last the highest.
    for type_, name_key, search_text, row_labels in sorted(rows, key=itemgetter(1)):
        change = result[type_]
        found = of_text(search_text)
        if labels is None:
            change.n.update(found)
        else:
            group = (type_, tuple(row_labels.items()))
            counts = groups.get(group)
            if counts is None and len(groups) < MAX_GROUPS:
                counts = groups[group] = Counter()
            if counts is not None:
                counts.update(found)
            else:
                change.n.update(found)
                _count_labels(labels, found, row_labels)
        change.lo.update(dict.fromkeys(found.difference(change.lo), name_key))
        change.hi.update(dict.fromkeys(found, name_key))
    for (type_, items), counts in groups.items():
        result[type_].n.update(counts)
        if labels is not None:
            _count_labels(labels, counts, dict(items))
    return dict(result)


def label_additions(rows: Iterable[tuple[str, dict[str, str]]]) -> LabelChanges:
    """The label gram count changes of adding profiles with these (search_text, labels)."""
    result: LabelChanges = {}
    for search_text, labels in rows:
        if labels:
            _count_labels(result, of_text(search_text), labels)
    return result


def _count_labels(
    into: LabelChanges, found: set[str] | Counter[str], labels: dict[str, str]
) -> None:
    for key, value in labels.items():
        label = f"{key}={value}"
        counts = into.get(label)
        if counts is None:
            counts = into[label] = Counter()
        counts.update(found)


def _merge(into: Changes, other: Changes) -> None:
    into.n.update(other.n)
    for bounds, other_bounds, wider in ((into.lo, other.lo, min), (into.hi, other.hi, max)):
        if not bounds:
            bounds.update(other_bounds)
            continue
        for gram, name_key in other_bounds.items():
            known = bounds.get(gram)
            bounds[gram] = name_key if known is None else wider(known, name_key)
