"""Profiles on the wire: the client's Profile shape, and user profiles with their role."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Protocol

import pydantic_core
from pydantic import ConfigDict, Field, WithJsonSchema

from cadenya_server.auth.caller import ROLE_ADMIN, ROLE_MEMBER
from cadenya_server.kit import update_mask
from cadenya_server.kit.clock import rfc3339
from cadenya_server.kit.schemas import (
    AccountResourceMetadata,
    AccountResourceRow,
    Labels,
    Pagination,
    RequestModel,
    ShortText,
    WireModel,
)
from cadenya_server.models import Profile as ProfileModel
from cadenya_server.profiles.text import Email


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
    """A stored profile: the ORM's, or a row of profiles.search.planner.PAGE_COLUMNS."""

    type: str
    email: str
    deactivated_at: datetime | None


class ProfileSpec(WireModel):
    type: ProfileType
    email: str = ""
    name: str = ""


class ProfileInfo(WireModel):
    """What the server says of a profile (read-only), beside what was given (`spec`)."""

    deactivated: bool = Field(
        False,
        description="The identity provider deactivated this person (SCIM `active: false`): "
        "they can neither sign in nor call the API, nor can the API keys they issued.",
    )


class Profile(WireModel):
    metadata: AccountResourceMetadata
    spec: ProfileSpec
    info: ProfileInfo = ProfileInfo()

    @classmethod
    def of(cls, row: ProfileRow) -> Profile:
        return cls(
            metadata=AccountResourceMetadata.of(row),
            spec=ProfileSpec(type=WIRE_TYPES[row.type], email=row.email, name=row.name),
            info=ProfileInfo(deactivated=row.deactivated_at is not None),
        )


def nobody() -> Profile:
    """The createdBy of a resource whose creator is not shown or no longer exists."""
    return Profile(
        metadata=AccountResourceMetadata.empty(), spec=ProfileSpec(type=ProfileType.UNSPECIFIED)
    )


class ProfileList(WireModel):
    items: list[Profile]
    pagination: Pagination

    @staticmethod
    def render(rows: Sequence[ProfileRow], *, next_cursor: str, total: int) -> bytes:
        """The JSON of the list of these rows' profiles, as model_dump_json(by_alias=True)
        writes it, without building the models.

        For the profile search, which renders fifty per keystroke: validating the models
        is a large share of each call in the server (bench/README.md).
        """
        return pydantic_core.to_json(
            {
                "items": [_profile_data(r) for r in rows],
                "pagination": {"nextCursor": next_cursor, "total": total},
            }
        )


def _profile_data(row: ProfileRow) -> dict[str, Any]:
    """Profile.of(row), dumped by alias (a test holds the two to the same bytes)."""
    return {
        "metadata": {
            "id": row.id,
            "accountId": row.account_id,
            "name": row.name,
            "profileId": row.creator_profile_id,
            "externalId": row.external_id,
            "labels": row.labels,
            "createdAt": rfc3339(row.created_at),
        },
        "spec": {"type": WIRE_TYPES[row.type], "email": row.email, "name": row.name},
        "info": {"deactivated": row.deactivated_at is not None},
    }


class WhoamiResponse(WireModel):
    profile: Profile
    default_workspace: AccountResourceMetadata


class Role(StrEnum):
    ADMIN = ROLE_ADMIN
    MEMBER = ROLE_MEMBER


class UserProfileSpec(ProfileSpec):
    role: str = Field(
        "",
        description='`admin` or `member` for users and system profiles; "" for API keys, '
        "whose permissions are their scopes.",
    )


class UserProfile(WireModel):
    """A Profile as the profile search returns it, with `spec.role` added."""

    metadata: AccountResourceMetadata
    spec: UserProfileSpec
    info: ProfileInfo = ProfileInfo()

    @classmethod
    def of(cls, row: ProfileModel) -> UserProfile:
        base = Profile.of(row)
        role = "" if row.type == "api_key" else row.role
        return cls(
            metadata=base.metadata,
            spec=UserProfileSpec(**base.spec.model_dump(), role=role),
            info=base.info,
        )


# metadata.name and spec.name are one field: the document asks for one of the two (the
# server also takes both when they agree, which a schema cannot say).
ONE_NAME = {
    "not": {
        "required": ["metadata", "spec"],
        "properties": {
            "metadata": {"type": "object", "required": ["name"]},
            "spec": {"type": "object", "required": ["name"]},
        },
    }
}


class UserProfileMetadataInput(RequestModel):
    """`name` is the same field as `spec.name`; give either, or both with one value."""

    name: ShortText = ""
    external_id: ShortText = ""
    labels: Labels = {}


class CreateUserProfileSpec(RequestModel):
    # Accepted so a client may post back the Profile shape it reads; only users are added
    # here, so the document names only the two types that are accepted (the others get a
    # 400 that says how such profiles are made).
    type: Annotated[
        ProfileType,
        WithJsonSchema({"type": "string", "enum": [ProfileType.UNSPECIFIED, ProfileType.USER]}),
    ] = Field(
        ProfileType.UNSPECIFIED,
        description="PROFILE_TYPE_USER or PROFILE_TYPE_UNSPECIFIED: this call adds users. "
        "API key profiles come with an API key (POST /v1/account/api_keys); system profiles "
        "are imported (`cadenya-server profiles import`, type system).",
    )
    email: Email = Field(description="Unique in the account, case-insensitively")
    name: ShortText = ""
    role: Role = Role.MEMBER


class CreateUserProfileRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra=ONE_NAME)

    metadata: UserProfileMetadataInput = UserProfileMetadataInput()
    spec: CreateUserProfileSpec


class UpdateUserProfileSpec(RequestModel):
    name: ShortText = ""
    role: Role | None = None


# metadata.name and spec.name are the same field.
UPDATABLE = frozenset(
    {"metadata.name", "spec.name", "metadata.externalId", "metadata.labels", "spec.role"}
)
ProfileMask = update_mask.mask_of(UPDATABLE)


class UpdateUserProfileRequest(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={**update_mask.named_means_given("spec.role"), **ONE_NAME}
    )

    metadata: UserProfileMetadataInput | None = None
    spec: UpdateUserProfileSpec | None = None
    update_mask: ProfileMask = ""
