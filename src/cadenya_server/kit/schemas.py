"""Wire models: camelCase, every field present, and the shared metadata shape."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints
from pydantic.alias_generators import to_camel

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


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_LINE_BREAKS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


# Stored text stays printable; PostgreSQL would refuse a NUL with a 500.
def _single_line(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def _multi_line(value: str) -> str:
    if _CONTROL_BUT_LINE_BREAKS.search(value):
        raise ValueError("must not contain control characters other than tabs and line breaks")
    return value


# A name or an external id as the API accepts it: trimmed, one line, at most
# 200 characters (the width of the columns).
ShortText = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=200), AfterValidator(_single_line)
]
RequiredShortText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_single_line),
]

# Free text such as a description: several lines, at most 4000 characters.
LongText = Annotated[str, StringConstraints(max_length=4000), AfterValidator(_multi_line)]


class EmptyRequest(RequestModel):
    """Actions that take no arguments; a body, if sent, must be an empty JSON object."""


class CreateAccountResourceMetadata(RequestModel):
    """The caller's part of a new account-scoped resource's metadata."""

    name: RequiredShortText
    external_id: ShortText = ""
    labels: dict[str, str] = {}


class UpdateAccountResourceMetadata(RequestModel):
    """Metadata in a PATCH body; the update mask says which of these fields count."""

    name: ShortText = ""
    external_id: ShortText = ""
    labels: dict[str, str] = {}


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
