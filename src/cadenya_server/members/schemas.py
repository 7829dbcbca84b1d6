"""Workspace members on the wire."""

from __future__ import annotations

from pydantic import ConfigDict, model_validator

from cadenya_server.kit.clock import rfc3339
from cadenya_server.kit.schemas import Pagination, ProfileRef, RequestModel, WireModel
from cadenya_server.models import Profile as ProfileRow
from cadenya_server.models import WorkspaceMember as MemberRow
from cadenya_server.profiles.text import Email


class WorkspaceMember(WireModel):
    """A profile granted access to a workspace, and the actor that links the two."""

    profile_id: str
    actor_id: str
    name: str
    email: str
    added_at: str

    @classmethod
    def of(cls, member: MemberRow, profile: ProfileRow) -> WorkspaceMember:
        return cls(
            profile_id=profile.id,
            actor_id=member.id,
            name=profile.name,
            email=profile.email,
            added_at=rfc3339(member.added_at),
        )


class WorkspaceMemberEvent(WorkspaceMember):
    """The data of `member.added` and `member.removed`: the member as the API lists it,
    and the workspace it joined or left."""

    workspace_id: str


class WorkspaceMemberList(WireModel):
    items: list[WorkspaceMember]
    pagination: Pagination


class AddMemberRequest(RequestModel):
    """Exactly one of the two: an existing profile, or an email (a new one is invited)."""

    model_config = ConfigDict(
        json_schema_extra={"oneOf": [{"required": ["profileId"]}, {"required": ["email"]}]}
    )

    profile_id: ProfileRef = ""
    email: Email = ""

    @model_validator(mode="after")
    def _exactly_one(self) -> AddMemberRequest:
        if len(self.model_fields_set & {"profile_id", "email"}) != 1:
            raise ValueError("give exactly one of profileId and email")
        return self
