"""User profiles on the wire: the client's Profile shape plus the role."""

from __future__ import annotations

from enum import StrEnum

from pydantic import ConfigDict, Field

from cadenya_server.auth.caller import ROLE_ADMIN, ROLE_MEMBER
from cadenya_server.kit import update_mask
from cadenya_server.kit.schemas import (
    AccountResourceMetadata,
    Labels,
    RequestModel,
    ShortText,
    WireModel,
)
from cadenya_server.models import Profile as ProfileRow
from cadenya_server.profiles.schemas import Profile, ProfileSpec
from cadenya_server.profiles.text import Email


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

    @classmethod
    def of(cls, row: ProfileRow) -> UserProfile:
        base = Profile.of(row)
        role = "" if row.type == "api_key" else row.role
        return cls(
            metadata=base.metadata,
            spec=UserProfileSpec(**base.spec.model_dump(), role=role),
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
        json_schema_extra={
            **update_mask.named_means_given("spec.role"),
            **ONE_NAME,
        }
    )

    metadata: UserProfileMetadataInput | None = None
    spec: UpdateUserProfileSpec | None = None
    update_mask: ProfileMask = ""
