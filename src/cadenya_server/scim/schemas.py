"""SCIM on the wire: the service scim2-models describes, our rows as its resources, its errors.

A User is a user profile: `id` the profile id, `userName` its email (or, when the
identity provider's userName is not an email, the one kept in scim_users), `displayName`
its name, `externalId` its external id, `active` whether it is not deactivated; every
other attribute the provider sent is kept as it came (never a password). A Group is an
active workspace: `displayName` its name, `externalId` its external id, `members` its
user members.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from fastapi.responses import JSONResponse
from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    Context,
    EnterpriseUser,
    Error,
    ETag,
    Filter,
    Group,
    GroupMember,
    Meta,
    Patch,
    ResourceType,
    ScimPolicy,
    ScimProvider,
    ServiceProviderConfig,
    Sort,
    User,
)
from scim2_server.responses import SCIM_MEDIA_TYPE, ScimResponse

from cadenya_server.kit.clock import as_utc
from cadenya_server.kit.errors import ApiError, Code
from cadenya_server.models import Profile as ProfileRow
from cadenya_server.models import ScimUser as ScimUserRow
from cadenya_server.models import Workspace as WorkspaceRow

PREFIX = "/scim/v2"
USER = User[EnterpriseUser]
# The most resources one page holds (RFC 7644 §3.4.2.4 lets the server lower `count`).
MAX_RESULTS = 200

PROVIDER = ScimProvider(
    models=[User, EnterpriseUser, Group],
    resource_types=[ResourceType.from_resource(USER), ResourceType.from_resource(Group)],
    config=ServiceProviderConfig(
        patch=Patch(supported=True),
        bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
        filter=Filter(supported=True, max_results=MAX_RESULTS),
        change_password=ChangePassword(supported=False),
        sort=Sort(supported=False),
        etag=ETag(supported=False),
        authentication_schemes=[
            AuthenticationScheme(
                type=AuthenticationScheme.Type.oauthbearertoken,
                name="API key",
                description="An API key of this server holding the scope scim:manage",
                primary=True,
            )
        ],
    ),
    # What identity providers really send: Okta and Entra ID add attributes of their own
    # (ignored), Entra ID removes members by value and patches emails[type eq "work"]
    # before any exists (Microsoft's SCIM compatibility notes).
    policy=ScimPolicy(
        unknown=ScimPolicy.Unknown.ignore,
        remove_value_as_filter=ScimPolicy.RemoveValue.apply,
        unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create,
    ),
)

# The User attributes that live in profile columns, not in scim_users.attributes.
# `active` is kept too, only to tell a User given no `active` (read back without one).
_IN_COLUMNS = frozenset({"schemas", "id", "meta", "userName", "externalId", "password"})


def _latest(*moments: datetime | None) -> datetime:
    return max(as_utc(moment) for moment in moments if moment is not None)


def version(moment: datetime) -> str:
    """A weak ETag from the last change (ETags are not announced; scim2-server's storage
    rules ask for one)."""
    return f'W/"{as_utc(moment).timestamp():.6f}"'


def user_attributes(user: User[Any]) -> dict[str, Any]:
    """What scim_users keeps of a User: every attribute no profile column holds."""
    dumped = user.model_dump(mode="json", scim_ctx=Context.RESOURCE_REPLACEMENT_REQUEST)
    kept = {key: value for key, value in dumped.items() if key not in _IN_COLUMNS}
    if "active" in kept:
        # Its value is the profile's deactivation; kept is only that one was given.
        kept["active"] = True
    return kept


def display_name(user: User[Any]) -> str:
    """The profile's name: displayName, else the name's formatted form or its parts."""
    return _display_name(user.model_dump(mode="json"))


def _display_name(attributes: dict[str, Any]) -> str:
    if attributes.get("displayName"):
        return str(attributes["displayName"])
    name = attributes.get("name") or {}
    if name.get("formatted"):
        return str(name["formatted"])
    return " ".join(name[part] for part in ("givenName", "familyName") if name.get(part))


def user_of(profile: ProfileRow, kept: ScimUserRow | None) -> User[Any]:
    """A profile as a SCIM User."""
    data: dict[str, Any] = dict(kept.attributes) if kept is not None else {}
    changed = _latest(profile.updated_at, kept.updated_at if kept is not None else None)
    schemas = [str(User.__schema__)]
    if str(EnterpriseUser.__schema__) in data:
        schemas.append(str(EnterpriseUser.__schema__))
    data.update(
        schemas=schemas,
        id=profile.id,
        userName=(kept.user_name if kept is not None and kept.user_name else profile.email),
        meta={
            "resourceType": "User",
            "created": as_utc(profile.created_at).isoformat(),
            "lastModified": changed.isoformat(),
            "version": version(changed),
        },
    )
    if profile.external_id:
        data["externalId"] = profile.external_id
    if profile.deactivated_at is not None:
        data["active"] = False
    elif kept is None or "active" in kept.attributes:
        data["active"] = True
    # The name changed through the API since the provider wrote it: the profile's wins.
    if profile.name != _display_name(data):
        data["displayName"] = profile.name or None
    return USER.model_validate(data)


def group_of(workspace: WorkspaceRow, members: Sequence[ProfileRow] | None) -> Group:
    """An active workspace and its user members as a SCIM Group (`members` None: left out)."""
    return Group(
        id=workspace.id,
        display_name=workspace.name,
        external_id=workspace.external_id or None,
        members=None
        if members is None
        else [
            GroupMember(value=p.id, ref=f"Users/{p.id}", type="User", display=p.name or None)
            for p in members
        ],
        meta=Meta(
            resource_type="Group",
            created=as_utc(workspace.created_at),
            last_modified=as_utc(workspace.updated_at),
            version=version(workspace.updated_at),
        ),
    )


# --- Errors: SCIM's format on /scim/v2 (RFC 7644 §3.12) ------------------------------------


class ScimProblem(ApiError):
    """A refusal scim2-server phrased, raised so that the request's transaction rolls back."""

    def __init__(self, response: ScimResponse) -> None:
        body = response.body or {}
        super().__init__(str(body.get("detail", "")), headers=dict(response.headers))
        self.http_status = int(response.status)
        self.scim_body = body


# Our errors' SCIM scimType (RFC 7644 Table 9), where one fits.
_SCIM_TYPES = {Code.INVALID_ARGUMENT: "invalidValue", Code.ALREADY_EXISTS: "uniqueness"}


def error_response(error: ApiError) -> JSONResponse:
    """Any error under /scim/v2, in SCIM's error format."""
    if isinstance(error, ScimProblem):
        body = error.scim_body
    else:
        scim_type = _SCIM_TYPES.get(error.code) if error.http_status in (400, 409) else None
        body = Error(
            status=error.http_status, scim_type=scim_type, detail=error.message
        ).model_dump()
    headers = {k: v for k, v in error.headers.items() if k.lower() != "content-type"}
    return JSONResponse(
        body, status_code=error.http_status, headers=headers, media_type=SCIM_MEDIA_TYPE
    )
