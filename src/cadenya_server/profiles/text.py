"""Profile text rules: what a name and an email may be, and the keys derived from them.

Search and order are defined on Python's `str.lower()`, computed here on every
write, so both databases compare exactly what Python would.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from cadenya_server.kit.errors import InvalidArgument

MAX_NAME = 200
MAX_EMAIL = 320
# Joins name and email in the search haystack. Stored text never contains a
# control character, so no query can match across the join.
SEPARATOR = "\n"
# Not whitespace, not a control character, not `@`: what either side of an email holds.
_EMAIL_PART = r"[^@\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]+"
# Also in the OpenAPI document, once the value is trimmed.
EMAIL_PATTERN = rf"^{_EMAIL_PART}@{_EMAIL_PART}$"
# Unicode's control characters (category Cc): C0, DEL and C1. A test holds the two to
# the same code points; per character through unicodedata, the check was a large share
# of an import's reading and checking.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def clean_name(name: str, *, field: str = "spec.name") -> str:
    name = name.strip()
    if len(name) > MAX_NAME:
        raise InvalidArgument.field(field, f"at most {MAX_NAME} characters")
    if has_control(name):
        raise InvalidArgument.field(field, "must not contain control characters")
    return name


def clean_email(email: str, *, field: str = "spec.email", required: bool = True) -> str:
    email = email.strip()
    if not email and not required:
        return ""
    if len(email) > MAX_EMAIL or not re.fullmatch(EMAIL_PATTERN, email):
        raise InvalidArgument.field(field, "must be an email address such as ada@example.com")
    return email


def checked_email(email: str) -> str:
    """An email in a request body: `email` of the Email type."""
    try:
        return clean_email(email)
    except InvalidArgument as exc:
        raise ValueError(exc.violations[0].description) from exc


Email = Annotated[
    str,
    AfterValidator(checked_email),
    Field(max_length=MAX_EMAIL, json_schema_extra={"pattern": EMAIL_PATTERN}),
]


def name_key(name: str) -> str:
    return name.lower()


def email_key(email: str) -> str | None:
    """The uniqueness key of an email; None when there is none."""
    return email.lower() or None


def search_text(name: str, email: str) -> str:
    return f"{name.lower()}{SEPARATOR}{email.lower()}"
