"""The real API's label rules, and the `k=v,k2=v2` filter syntax."""

from __future__ import annotations

import re

from cadenya_server.kit.errors import InvalidArgument

_NAME = r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?"
_VALUE = re.compile(rf"({_NAME})?")
_KEY_NAME = re.compile(_NAME)
_DNS_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"{_DNS_LABEL}(\.{_DNS_LABEL})*")
MAX_LABELS = 64

# The same rules for the OpenAPI document (ECMA-262 patterns). The lookahead bounds the
# prefix at 253 characters, as key_problem does.
_KEY = rf"(?:(?=[^/]{{1,253}}/){_DNS_SUBDOMAIN.pattern}/)?{_NAME}"
_PAIR = rf" *{_KEY}=(?:{_NAME})? *"
FILTER_PATTERN = rf"^(?:{_PAIR}(?:,{_PAIR}){{0,{MAX_LABELS - 1}}})?$"
JSON_SCHEMA = {
    "maxProperties": MAX_LABELS,
    "propertyNames": {"pattern": rf"^{_KEY}$"},
    "additionalProperties": {"type": "string", "pattern": rf"^(?:{_NAME})?$"},
    "description": "Values are 0-63 characters, alphanumeric, with '-', '_' or '.' allowed "
    "between; keys have the same shape, with an optional DNS-subdomain prefix "
    "(`cadenya.com/team`).",
}


def key_problem(key: str) -> str | None:
    """Why `key` is not a valid label key, or None."""
    prefix, slash, name = key.rpartition("/")
    if slash and (len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        return "the prefix must be a DNS subdomain of at most 253 characters"
    if not _KEY_NAME.fullmatch(name):
        return (
            "the name must be 1-63 characters, alphanumeric, with '-', '_' or '.' allowed between"
        )
    return None


def value_problem(value: str) -> str | None:
    """Why `value` is not a valid label value, or None."""
    if not _VALUE.fullmatch(value):
        return "values are 0-63 characters, alphanumeric, with '-', '_' or '.' allowed between"
    return None


def validate(labels: object, *, field: str = "metadata.labels") -> dict[str, str]:
    """The labels, checked; 400 naming the first bad key or value."""
    if not isinstance(labels, dict):
        raise InvalidArgument.field(field, "must be an object of strings")
    if len(labels) > MAX_LABELS:
        raise InvalidArgument.field(field, f"at most {MAX_LABELS} labels")
    for key, value in labels.items():
        if not isinstance(value, str):
            raise InvalidArgument.field(f"{field}[{key}]", "must be a string")
        problem = key_problem(key)
        if problem:
            raise InvalidArgument.field(f"{field}[{key}]", f"bad key: {problem}")
        problem = value_problem(value)
        if problem:
            raise InvalidArgument.field(f"{field}[{key}]", f"bad value: {problem}")
    return dict(labels)


# No label holds this value, so a filter asking for it matches nothing.
NO_VALUE = "-"


def parse_filter(text: str | None, *, field: str = "labels") -> dict[str, str]:
    """`team=core,env=prod` as a dict; a resource matches when it has every pair."""
    if not text:
        return {}
    pairs: dict[str, str] = {}
    conflicting: set[str] = set()
    for part in text.split(","):
        key, eq, value = part.strip().partition("=")
        if not eq:
            raise InvalidArgument.field(field, f"{part!r} is not key=value")
        validate({key: value}, field=field)
        if pairs.setdefault(key, value) != value:
            conflicting.add(key)
    validate(pairs, field=field)
    # Two values for one key: nothing carries both, so the filter matches nothing.
    return pairs | dict.fromkeys(conflicting, NO_VALUE)
