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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache, lru_cache
from itertools import groupby
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


def _longer(part: str) -> Iterator[str]:
    """Every substring of `part` of two to MAX_GRAM characters (some more than once)."""
    return map(part.__getitem__, _slices(len(part)))


# Names repeat (first and last names recombine); emails rarely do.
@lru_cache(maxsize=1 << 16)
def _of_name(name_key: str) -> frozenset[str]:
    """The grams of a name, with "" (every profile counts for it)."""
    return frozenset(("", *name_key, *_longer(name_key)))


def of_text(search_text: str) -> set[str]:
    """Every gram a profile with this search text counts for."""
    # Grams across the name/email separator can never be asked for: no needle
    # holds a control character.
    name, _, email = search_text.partition(SEPARATOR)
    found = set(_of_name(name))
    found.update(email)
    found.update(_longer(email))
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
    # Profiles of one type and one set of labels add to the same counts: they are counted
    # together, a group at a time, and each group into its type's counts and its labels'
    # at the end. Group by group, one group's counts stay in the processor's cache, which
    # profiles counted in name order, each into its own group's counts, do not (the bench
    # has about a hundred groups; bench/README.md). Past MAX_GROUPS sets of labels, a
    # profile with a new one joins its type's strays, whose labels are counted one by one.
    groups: dict[tuple[str, tuple[tuple[str, str], ...] | None], list[Row]] = {}
    for row in rows:
        key = (row[0], tuple(row[3].items()) if labels is not None else ())
        members = groups.get(key)
        if members is None:
            if len(groups) >= MAX_GROUPS:
                key = (row[0], None)
            members = groups.setdefault(key, [])
        members.append(row)
    result: dict[str, Changes] = {}
    for (type_, items), members in groups.items():
        counted = _count_group(members, labels=labels if items is None else None)
        if labels is not None and items:
            _count_labels(labels, counted.n, dict(items))
        if type_ in result:
            _merge(result[type_], counted)
        else:
            result[type_] = counted
    return result


def _count_group(rows: list[Row], *, labels: LabelChanges | None) -> Changes:
    """The count changes of adding these rows, all of one type.

    `labels`: where to add each row's label gram changes, if they are wanted.
    """
    change = Changes()
    # In name order, a gram's first profile gives its lowest name key, its last the
    # highest. Profiles of the same name (first and last names recombine) share most
    # of their grams: the bounds are taken once for all of them.
    for name_key, same_name in groupby(sorted(rows, key=itemgetter(1)), key=itemgetter(1)):
        found_in_run: set[str] = set()
        for _type, _name_key, search_text, row_labels in same_name:
            # A profile's grams are kept only until its name's bounds are taken: holding a
            # batch's sets at once cost twice the time, in memory rather than in counting.
            found = of_text(search_text)
            change.n.update(found)
            if labels is not None:
                _count_labels(labels, found, row_labels)
            found_in_run |= found
        change.lo.update(dict.fromkeys(found_in_run.difference(change.lo), name_key))
        change.hi.update(dict.fromkeys(found_in_run, name_key))
    return change


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
