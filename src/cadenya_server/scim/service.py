"""SCIM's operations: scim2-server speaks the protocol, `Directory` is its storage.

scim2-server (`ScimService`, `ScimHandler`) validates each request with scim2-models,
applies a PUT or a PATCH to the stored resource (Entra ID's capitalised ops, path-less
value objects and "False" strings included), keeps the attributes a response asks for,
and builds the responses. `Directory` reads and writes people and workspaces only
through profiles.service, workspaces.service and members.service, so a change made
through SCIM is audited and emits the webhook event the same change through /v1 does.
"""

from __future__ import annotations

import functools
import json
import re
from http import HTTPStatus
from typing import Any

from pydantic import ValidationError
from scim2_models import (
    Context,
    Group,
    InvalidFilterException,
    InvalidValueException,
    NotImplementedException,
    Reference,
    Resource,
    ResourceType,
    ResponseParameters,
    SCIMException,
    SearchRequest,
    UniquenessException,
    User,
)
from scim2_models import Path as ScimPath
from scim2_models.path import CompareOperator, Comparison, ValuePath
from scim2_server.handler import ScimHandler
from scim2_server.requests import ScimRequest
from scim2_server.responses import ScimResponse
from scim2_server.service import ScimService
from scim2_server.storage import ScimStorage, SearchPage
from scim2_server.utils import parametrize
from sqlalchemy.orm import Session

from cadenya_server.audit import service as audit
from cadenya_server.auth.caller import Caller
from cadenya_server.config import Settings
from cadenya_server.kit.errors import NotFound
from cadenya_server.members import service as members
from cadenya_server.members.schemas import AddMemberRequest
from cadenya_server.models import Profile as ProfileRow
from cadenya_server.models import ScimUser as ScimUserRow
from cadenya_server.models import Workspace as WorkspaceRow
from cadenya_server.profiles import service as profiles
from cadenya_server.profiles import text
from cadenya_server.profiles.schemas import UpdateUserProfileRequest
from cadenya_server.profiles.text import EMAIL_PATTERN, MAX_EMAIL
from cadenya_server.scim import repository
from cadenya_server.scim.schemas import (
    MAX_RESULTS,
    PROVIDER,
    ScimProblem,
    display_name,
    group_of,
    user_attributes,
    user_of,
)
from cadenya_server.workspaces import service as workspaces
from cadenya_server.workspaces.schemas import CreateWorkspaceRequest, UpdateWorkspaceRequest


class _Service(ScimService):
    def patch_response(
        self,
        base_url: str,
        resource: Resource[Any],
        response_parameters: ResponseParameters[Any],
    ) -> ScimResponse:
        """200 with the resource, never RFC 7644's optional 204: Okta reads the patched
        User from the answer."""
        return self.resource_response(
            self.publish(base_url, resource),
            Context.RESOURCE_REPLACEMENT_RESPONSE,
            response_parameters,
        )

    def publish(self, base_url: str, resource: Resource[Any]) -> Resource[Any]:
        """scim2-server's, without its deep copy (a large share of a look-up's time,
        bench/README.md): `Directory` builds every resource afresh for one response, so
        there is no stored one to protect."""
        assert resource.meta is not None and resource.id is not None
        location = self.resource_location(
            base_url, self.get_resource_type_of(resource), resource.id
        )
        resource.meta = resource.meta.model_copy(update={"location": location, "version": None})
        self._publish_references(base_url, resource)
        return resource

    def _publish_references(self, base_url: str, resource: Resource[Any]) -> None:
        """scim2-server's, with the paths that hold references to other resources found once
        per resource type instead of on every call (most of its time, bench/README.md)."""

        def locate(reference: Any) -> Any:
            if isinstance(reference, list):
                return [locate(item) for item in reference]
            if reference is None:
                return None
            return self.reference_location(base_url, reference)

        for path, sub_field, head in _reference_paths(type(resource)):
            if sub_field is None:
                path.set(resource, locate(path.get(resource)), strict=False)
                continue
            entries = ScimPath(head).get(resource)
            for entry in entries if isinstance(entries, list) else [entries]:
                if entry is not None:
                    setattr(entry, sub_field, locate(getattr(entry, sub_field)))

    def search_response(
        self,
        base_url: str,
        resource_types: list[ResourceType],
        page: SearchPage,
        search_request: SearchRequest[Any],
    ) -> ScimResponse:
        """scim2-server's ListResponse (RFC 7644 §3.4.2) written as its model dumps it,
        without validating the dumped resources into the model again (as long as the
        look-up itself, bench/README.md). Pages are by index: cursors are not announced."""
        resources = [
            self.publish(base_url, resource).model_dump(
                scim_ctx=Context.RESOURCE_QUERY_RESPONSE, response_parameters=search_request
            )
            for resource in page.resources
        ]
        return ScimResponse(
            HTTPStatus.OK,
            {
                "schemas": [LIST_RESPONSE],
                "totalResults": page.total,
                "itemsPerPage": len(resources),
                "startIndex": search_request.start_index or 1,
                "Resources": resources,
            },
        )


@functools.cache
def _reference_paths(resource_type: type[Resource[Any]]) -> list[tuple[Any, str | None, str]]:
    """The resource type's attributes that refer to resources of this server, as scim2-server
    finds them: (the path, the sub-attribute holding the reference or None, the path of the
    attribute holding it)."""
    found = []
    for path in parametrize(ScimPath, resource_type).iter_paths(target_type=[Reference]):
        binding = path.resolve()
        assert binding is not None
        reference_types = set(binding.target_type.__reference_types__)
        if not reference_types or reference_types & {"external", "uri"}:
            continue
        head = f"{path.schema}:{path.parts[0]}" if path.schema else path.parts[0]
        found.append((path, binding.sub_field_name, head))
    return found


SERVICE = _Service(PROVIDER)
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
USER_FILTERS = "userName eq, externalId eq, emails.value eq (or emails[value eq]) and id eq"


def handle(
    *, session: Session, caller: Caller, settings: Settings, request: ScimRequest
) -> ScimResponse:
    """Serve one SCIM request in the caller's transaction; a refusal raises ScimProblem."""
    handler = ScimHandler(SERVICE, Directory(session=session, caller=caller, settings=settings))
    if request.method.upper() == "PATCH":
        request.body = _without_null_selectors(request.body)
    try:
        return handler.handle(request)
    except SCIMException as exc:
        raise ScimProblem(SERVICE.error_response(exc)) from exc


def _without_null_selectors(body: bytes) -> bytes:
    """Entra ID removes a member with `{"$ref": null, "value": id}`: a null names nothing to
    match, where scim2-models would look for a member whose $ref is null."""
    try:
        patch = json.loads(body)
        operations = patch["Operations"]
    except (ValueError, TypeError, KeyError):
        return body  # scim2-server refuses it in SCIM's words
    changed = False
    for operation in operations if isinstance(operations, list) else []:
        if not isinstance(operation, dict):
            continue
        value = operation.get("value")
        if str(operation.get("op", "")).lower() == "remove" and isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    for key in [k for k, v in item.items() if v is None]:
                        del item[key]
                        changed = True
    return json.dumps(patch).encode() if changed else body


def _is_email(value: str) -> bool:
    return re.fullmatch(EMAIL_PATTERN, value) is not None


def _email_of(user_name: str | None) -> str:
    """The profile's email for a userName: itself when it is an email, else none (it is
    kept in scim_users)."""
    user_name = user_name or ""
    if len(user_name) > MAX_EMAIL or text.has_control(user_name):
        raise InvalidValueException(
            detail=f"userName: at most {MAX_EMAIL} characters, no control characters"
        )
    return user_name if _is_email(user_name) else ""


def _built(model: type[Any], data: dict[str, Any]) -> Any:
    """One of our request models from SCIM's values, a bad value as SCIM's invalidValue."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidValueException(detail=str(first.get("msg", "invalid value"))) from exc


class Directory(ScimStorage):
    """The account's people (Users) and active workspaces (Groups), for scim2-server."""

    def __init__(self, *, session: Session, caller: Caller, settings: Settings) -> None:
        self.session = session
        self.caller = caller
        self.settings = settings
        # What scim_users holds for the profiles read so far (a look-up reads it first).
        self._kept: dict[str, ScimUserRow | None] = {}

    # --- Reading -------------------------------------------------------------------------

    def get(
        self,
        resource_type: ResourceType,
        resource_id: str,
        *,
        response_parameters: ResponseParameters[Any] | None = None,
    ) -> Resource[Any]:
        if resource_type.name == "User":
            return self._users([self._person(resource_id)])[0]
        return self._group(self._workspace(resource_id))

    def search(
        self,
        resource_types: list[ResourceType],
        search_request: SearchRequest[Any],
        *,
        position: Any = None,
    ) -> SearchPage:
        if len(resource_types) != 1:
            raise NotImplementedException(detail="search /Users or /Groups, not the root")
        start = search_request.start_index_0 or 0
        count = MAX_RESULTS if search_request.count is None else search_request.count
        if resource_types[0].name == "Group":
            return self._search_groups(search_request, start, count)
        node = search_request.filter.ast if search_request.filter is not None else None
        if node is None:
            rows = profiles.users_page(
                session=self.session, caller=self.caller, offset=start, limit=count
            )
            total = profiles.count_users(session=self.session, caller=self.caller)
            return SearchPage(total, self._users(rows) if count else [])
        found = self._users(self._people_where(node))
        return SearchPage(len(found), found[start : start + count])

    def _people_where(self, node: Any) -> list[ProfileRow]:
        """The people an indexed filter finds; any other filter is refused."""
        attr, value = _equality(node)
        if attr == "username":
            return self._people_named(value)
        if attr == "externalid":
            return profiles.users_where(session=self.session, caller=self.caller, external_id=value)
        if attr == "emails.value":
            return profiles.users_where(session=self.session, caller=self.caller, email=value)
        if attr == "id":
            try:
                return [self._person(value)]
            except NotFound:
                return []
        raise InvalidFilterException(detail=f"Users are filtered by {USER_FILTERS}")

    def _people_named(self, user_name: str) -> list[ProfileRow]:
        """userName eq: an email-shaped one is a profile's email (its unique index), unless
        SCIM kept another userName for that profile; any other is one SCIM kept."""
        if _is_email(user_name):
            by_email = profiles.users_where(
                session=self.session, caller=self.caller, email=user_name
            )
            kept = self._kept_of(by_email)
            return [p for p in by_email if kept[p.id] is None or not kept[p.id].user_name]
        named = repository.by_user_name(
            self.session, account_id=self.caller.account_id, user_name=user_name
        )
        return [] if named is None else [self._person(named.profile_id)]

    def _person(self, profile_id: str) -> ProfileRow:
        return profiles.find_user(session=self.session, caller=self.caller, profile_id=profile_id)

    def _kept_of(self, rows: list[ProfileRow]) -> dict[str, ScimUserRow | None]:
        missing = [row.id for row in rows if row.id not in self._kept]
        if missing:
            found = repository.by_profile_ids(self.session, profile_ids=missing)
            self._kept.update({profile_id: found.get(profile_id) for profile_id in missing})
        return self._kept

    def _users(self, rows: list[ProfileRow]) -> list[User[Any]]:
        kept = self._kept_of(rows)
        return [user_of(row, kept[row.id]) for row in rows]

    def _workspace(self, workspace_id: str) -> WorkspaceRow:
        """An active workspace; an archived one (a deleted Group) is 404, not /v1's 403."""
        row = workspaces.find(session=self.session, caller=self.caller, workspace_id=workspace_id)
        if row.status == workspaces.ARCHIVED:
            raise NotFound(f"workspace {workspace_id!r} not found")
        return row

    def _group(self, workspace: WorkspaceRow) -> Group:
        people = members.profiles_in(
            session=self.session, caller=self.caller, workspace_id=workspace.id
        )
        return group_of(workspace, [p for p in people if p.type == "user"])

    def _search_groups(
        self, search_request: SearchRequest[Any], start: int, count: int
    ) -> SearchPage:
        """Groups by displayName eq or externalId eq through the workspaces' columns; any
        other filter is evaluated on the account's active workspaces (bounded by the
        workspace quota)."""
        node = search_request.filter.ast if search_request.filter is not None else None
        attr, value = _equality(node) if node is not None else ("", "")
        if node is None or attr in ("displayname", "externalid"):
            rows, total = workspaces.active_page(
                session=self.session,
                caller=self.caller,
                offset=start,
                limit=count,
                name=value if attr == "displayname" else None,
                external_id=value if attr == "externalid" else None,
            )
            return SearchPage(total, [self._group(row) for row in rows])
        rows, _ = workspaces.active_page(
            session=self.session,
            caller=self.caller,
            offset=0,
            limit=self.settings.max_workspaces_per_account,
        )
        found = [g for g in (self._group(row) for row in rows) if search_request.filter.match(g)]
        return SearchPage(len(found), found[start : start + count])

    # --- Writing -------------------------------------------------------------------------

    def create(self, resource_type: ResourceType, resource: Resource[Any]) -> Resource[Any]:
        if resource_type.name == "User":
            return self._create_user(resource)
        return self._create_group(resource)

    def update(
        self,
        resource_type: ResourceType,
        resource: Resource[Any],
        *,
        expected_version: str | None = None,
    ) -> Resource[Any]:
        if resource_type.name == "User":
            return self._update_user(resource)
        return self._update_group(resource)

    def delete(
        self,
        resource_type: ResourceType,
        resource_id: str,
        *,
        expected_version: str | None = None,
    ) -> None:
        if resource_type.name == "User":
            profiles.delete(session=self.session, caller=self.caller, profile_id=resource_id)
        else:
            workspaces.archive(session=self.session, caller=self.caller, workspace_id=resource_id)

    def _create_user(self, user: User[Any]) -> User[Any]:
        user_name = user.user_name or ""
        email = _email_of(user_name)
        if not email:
            self._user_name_free(user_name, None)
        row = profiles.add_person(
            session=self.session,
            caller=self.caller,
            name=display_name(user),
            email=email,
            external_id=user.external_id or "",
            max_profiles=self.settings.max_profiles_per_account,
        )
        self._keep(row, user, user_name if not email else None, created=True)
        if user.active is False:
            profiles.set_active(
                session=self.session, caller=self.caller, profile_id=row.id, active=False
            )
        return self._users([row])[0]

    def _update_user(self, user: User[Any]) -> User[Any]:
        row = self._person(str(user.id))
        user_name = user.user_name or ""
        email = _email_of(user_name)
        if not email:
            self._user_name_free(user_name, row.id)
        if (email or "") != row.email:
            profiles.change_email(
                session=self.session, caller=self.caller, profile_id=row.id, email=email
            )
        fields: dict[str, Any] = {}
        if display_name(user) != row.name:
            fields["spec.name"] = display_name(user)
        if (user.external_id or "") != row.external_id:
            fields["metadata.externalId"] = user.external_id or ""
        if fields:
            body = _built(UpdateUserProfileRequest, _masked(fields))
            profiles.update(session=self.session, caller=self.caller, profile_id=row.id, body=body)
        self._keep(row, user, user_name if not email else None, created=False)
        # No `active` (removed by a PATCH) reads as SCIM's default: active.
        profiles.set_active(
            session=self.session,
            caller=self.caller,
            profile_id=row.id,
            active=user.active is not False,
        )
        return self._users([row])[0]

    def _user_name_free(self, user_name: str, profile_id: str | None) -> None:
        named = repository.by_user_name(
            self.session, account_id=self.caller.account_id, user_name=user_name
        )
        if named is not None and named.profile_id != profile_id:
            raise UniquenessException(detail=f"the userName {user_name!r} is taken")

    def _keep(
        self, row: ProfileRow, user: User[Any], user_name: str | None, *, created: bool
    ) -> None:
        """Keep the User's other attributes; a change of them alone is audited too."""
        attributes = user_attributes(user)
        self._kept.pop(row.id, None)
        before_name, before = repository.put(
            self.session,
            account_id=self.caller.account_id,
            profile_id=row.id,
            user_name=user_name,
            attributes=attributes,
        )
        # `active` there only says one was given: its change is audited as a deactivation.
        changed = {
            k for k in {*before, *attributes} - {"active"} if before.get(k) != attributes.get(k)
        }
        if before_name != user_name:
            changed.add("userName")
        if changed and not created:
            audit.record(
                self.session,
                caller=self.caller,
                action="scim.user.update",
                resource_id=row.id,
                details={"attributes": sorted(changed)},
            )

    def _create_group(self, group: Group) -> Group:
        body = _built(
            CreateWorkspaceRequest,
            {"metadata": {"name": group.display_name or "", "externalId": group.external_id or ""}},
        )
        created = workspaces.create(
            session=self.session,
            caller=self.caller,
            body=body,
            max_active=self.settings.max_workspaces_per_account,
        )
        row = self._workspace(created.metadata.id)
        self._set_members(row, group)
        return self._group(row)

    def _update_group(self, group: Group) -> Group:
        row = self._workspace(str(group.id))
        fields: dict[str, str] = {}
        if (group.display_name or "") != row.name:
            fields["metadata.name"] = group.display_name or ""
        if (group.external_id or "") != row.external_id:
            fields["metadata.externalId"] = group.external_id or ""
        if fields:
            body = _built(UpdateWorkspaceRequest, _masked(fields))
            workspaces.update(
                session=self.session, caller=self.caller, workspace_id=row.id, body=body
            )
        self._set_members(row, group)
        return self._group(row)

    def _set_members(self, row: WorkspaceRow, group: Group) -> None:
        """Make the workspace's user members the Group's, through members.service."""
        wanted = [m.value for m in group.members or [] if m.value]
        current = {
            p.id
            for p in members.profiles_in(
                session=self.session, caller=self.caller, workspace_id=row.id
            )
            if p.type == "user"
        }
        for profile_id in dict.fromkeys(wanted):
            if profile_id in current:
                continue
            # Only people are members of a Group: any other id is an unknown User.
            self._person(profile_id)
            members.add(
                session=self.session,
                caller=self.caller,
                workspace_id=row.id,
                body=AddMemberRequest(profile_id=profile_id),
                max_profiles=self.settings.max_profiles_per_account,
            )
        for profile_id in sorted(current - set(wanted)):
            members.remove(
                session=self.session, caller=self.caller, workspace_id=row.id, profile_id=profile_id
            )


def _masked(fields: dict[str, str]) -> dict[str, Any]:
    """A /v1 update body that changes exactly these fields (`spec.name` → value)."""
    body: dict[str, Any] = {"updateMask": ",".join(sorted(fields))}
    for path, value in fields.items():
        part, _, name = path.partition(".")
        body.setdefault(part, {})[name] = value
    return body


def _equality(node: Any) -> tuple[str, str]:
    """`attr eq "value"` (or `emails[value eq "value"]`) as (lower-cased attribute path,
    value); ("", "") for any other filter."""
    if isinstance(node, ValuePath) and isinstance(node.val_filter, Comparison):
        inner = _equality(node.val_filter)
        if inner[0]:
            return f"{node.attr_path.attr.lower()}.{inner[0]}", inner[1]
        return "", ""
    if (
        isinstance(node, Comparison)
        and node.op == CompareOperator.eq
        and isinstance(node.value, str)
        and node.attr_path.uri in (None, str(User.__schema__), str(Group.__schema__))
    ):
        path = node.attr_path.attr.lower()
        if node.attr_path.sub_attr:
            path += "." + node.attr_path.sub_attr.lower()
        return path, node.value
    return "", ""
