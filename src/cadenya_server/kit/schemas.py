"""Wire models: camelCase, every field present, and the shared metadata shape."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from pydantic.alias_generators import to_camel

from cadenya_server.kit import ids
from cadenya_server.kit import labels as label_rules
from cadenya_server.kit.clock import rfc3339


class WireModel(BaseModel):
    """A response or request body as it appears on the wire."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        # Responses always carry every field, so the OpenAPI document says so.
        json_schema_serialization_defaults_required=True,
    )


class RequestModel(WireModel):
    """A request body: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


_CONTROL = r"\x00-\x1f\x7f-\x9f"
_CONTROL_BUT_LINE_BREAKS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
# What str.strip() removes that is not a control character.
_SPACE = r"\x20\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"


def _documented(pattern: str) -> Any:
    """The rule a validator enforces, stated in the OpenAPI document."""
    return Field(json_schema_extra={"pattern": pattern})


# A URL's host and optional port, as the API accepts them: an ASCII DNS name (IDN hosts
# in their A-label form), an IPv4 address or a bracketed IPv6 one. Stated in the
# document, so that a generator of valid requests makes only hosts the server can read.
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_PORT = (
    r"(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
)
_HEX = r"[0-9A-Fa-f]{1,4}"
_IPV6 = (
    rf"({_HEX}:){{7}}{_HEX}|::(ffff:{_OCTET}(\.{_OCTET}){{3}}|({_HEX}:){{0,5}}{_HEX})?"
    rf"|({_HEX}:){{1,6}}:({_HEX})?"
)
HOST_AND_PORT_PATTERN = (
    rf"(({_LABEL}\.)*[A-Za-z]([A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?"
    rf"|{_OCTET}(\.{_OCTET}){{3}}|\[({_IPV6})\]){_PORT}"
)

SINGLE_LINE = rf"^[^{_CONTROL}]*$"
MULTI_LINE = rf"^[^{_CONTROL_BUT_LINE_BREAKS}]*$"
NOT_BLANK = rf"^[^{_CONTROL}]*[^{_CONTROL}{_SPACE}][^{_CONTROL}]*$"


# Stored text stays printable; PostgreSQL would refuse a NUL with a 500.
def _single_line(value: str) -> str:
    if not re.fullmatch(SINGLE_LINE, value):
        raise ValueError("must not contain control characters")
    return value


def _multi_line(value: str) -> str:
    if not re.fullmatch(MULTI_LINE, value):
        raise ValueError("must not contain control characters other than tabs and line breaks")
    return value


def id_of(prefix: str) -> Any:
    """The type of a `{prefix}_…` id in a request body: any other shape is 400, naming the
    field, before any database work."""
    return Annotated[
        str,
        StringConstraints(
            pattern=ids.pattern(prefix),
            min_length=ids.length(prefix),
            max_length=ids.length(prefix),
        ),
    ]


WorkspaceRef = id_of("workspace")
ProfileRef = id_of("profile")


# A name or an external id as the API accepts it: trimmed, one line, at most
# 200 characters (the width of the columns).
ShortText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=200),
    AfterValidator(_single_line),
    _documented(SINGLE_LINE),
]
RequiredShortText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_single_line),
    _documented(NOT_BLANK),
]

# Free text such as a description: several lines, at most 4000 characters.
LongText = Annotated[
    str,
    StringConstraints(max_length=4000),
    AfterValidator(_multi_line),
    _documented(MULTI_LINE),
]

# Checked by kit.labels.validate in the services, which name the offending key.
Labels = Annotated[dict[str, str], Field(json_schema_extra=label_rules.JSON_SCHEMA)]


class EmptyRequest(RequestModel):
    """Actions that take no arguments; a body, if sent, must be an empty JSON object."""


class CreateAccountResourceMetadata(RequestModel):
    """The caller's part of a new account-scoped resource's metadata."""

    name: RequiredShortText
    external_id: ShortText = ""
    labels: Labels = {}


class UpdateAccountResourceMetadata(RequestModel):
    """Metadata in a PATCH body; the update mask says which of these fields count."""

    # A resource's name is never empty: given, it must say something.
    name: RequiredShortText = ""
    external_id: ShortText = ""
    labels: Labels = {}


class AccountResourceRow(Protocol):
    """The columns every account-scoped table shares."""

    id: str
    account_id: str
    name: str
    creator_profile_id: str
    external_id: str
    labels: dict[str, str]
    created_at: datetime


class AccountResourceMetadata(WireModel):
    """Metadata of a resource that belongs to an account but not to a workspace."""

    id: str
    account_id: str
    name: str
    profile_id: str
    external_id: str = ""
    labels: dict[str, str] = {}
    created_at: str = ""

    @classmethod
    def of(cls, row: AccountResourceRow) -> AccountResourceMetadata:
        """The metadata of a stored account resource (profile, workspace, key, endpoint)."""
        return cls(
            id=row.id,
            account_id=row.account_id,
            name=row.name,
            profile_id=row.creator_profile_id,
            external_id=row.external_id,
            labels=row.labels,
            created_at=rfc3339(row.created_at),
        )

    @classmethod
    def empty(cls) -> AccountResourceMetadata:
        """The metadata of an absent resource (say, a deleted creator): every field zero."""
        return cls(id="", account_id="", name="", profile_id="", created_at=ZERO_TIME)


# The zero timestamp, as protojson writes an empty Timestamp. The official
# client parses every createdAt it receives, so "" would fail its decoder.
ZERO_TIME = "1970-01-01T00:00:00.000Z"


class Pagination(WireModel):
    next_cursor: str = ""
    total: int = 0


class Empty(WireModel):
    """The body of a call that returns nothing: `{}`, as gRPC gateways send it."""
