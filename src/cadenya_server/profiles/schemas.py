"""Profiles on the wire."""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from cadenya_server.kit.schemas import (
    AccountResourceMetadata,
    AccountResourceRow,
    Pagination,
    WireModel,
)


class ProfileType(StrEnum):
    UNSPECIFIED = "PROFILE_TYPE_UNSPECIFIED"
    USER = "PROFILE_TYPE_USER"
    API_KEY = "PROFILE_TYPE_API_KEY"
    SYSTEM = "PROFILE_TYPE_SYSTEM"


# Stored type <-> wire enum.
STORED_TYPES = {
    ProfileType.USER: "user",
    ProfileType.API_KEY: "api_key",
    ProfileType.SYSTEM: "system",
}
WIRE_TYPES = {stored: wire for wire, stored in STORED_TYPES.items()}


class ProfileRow(AccountResourceRow, Protocol):
    """A stored profile: the ORM's, or a row of profiles.repository.PAGE_COLUMNS."""

    type: str
    email: str


class ProfileSpec(WireModel):
    type: ProfileType
    email: str = ""
    name: str = ""


class Profile(WireModel):
    metadata: AccountResourceMetadata
    spec: ProfileSpec

    @classmethod
    def of(cls, row: ProfileRow) -> Profile:
        return cls(
            metadata=AccountResourceMetadata.of(row),
            spec=ProfileSpec(type=WIRE_TYPES[row.type], email=row.email, name=row.name),
        )


class ProfileList(WireModel):
    items: list[Profile]
    pagination: Pagination


class WhoamiResponse(WireModel):
    profile: Profile
    default_workspace: AccountResourceMetadata
