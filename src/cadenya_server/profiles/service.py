"""Profiles: the search, whoami, and administrators adding, changing and removing people."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import structlog
from sqlalchemy.orm import Session

from cadenya_server.audit import service as audit
from cadenya_server.auth.caller import ROLE_ADMIN, ROLE_MEMBER, Caller
from cadenya_server.kit import labels as label_rules
from cadenya_server.kit import quotas, update_mask
from cadenya_server.kit.clock import now
from cadenya_server.kit.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from cadenya_server.kit.labels import parse_filter
from cadenya_server.kit.pagination import Cursors, PageRequest, page_size, scope_of
from cadenya_server.kit.schemas import AccountResourceMetadata
from cadenya_server.models import Profile as ProfileRow
from cadenya_server.profiles import repository, text
from cadenya_server.profiles.schemas import (
    STORED_TYPES,
    UPDATABLE,
    CreateUserProfileRequest,
    Profile,
    ProfileList,
    ProfileType,
    UpdateUserProfileRequest,
    UpdateUserProfileSpec,
    UserProfile,
    UserProfileMetadataInput,
    WhoamiResponse,
)
from cadenya_server.profiles.search import index, planner
from cadenya_server.workspaces import service as workspaces
from cadenya_server.workspaces.schemas import Workspace, WorkspaceList

log = structlog.get_logger(__name__)


def search(
    *,
    session: Session,
    cursors: Cursors,
    caller: Caller,
    query: str,
    cursor: str,
    limit: int | None,
    type: ProfileType | None,
    labels: str | None,
) -> bytes:
    """One page of the account's profiles matching a search, with the exact total, as the
    JSON of a ProfileList."""
    size = page_size(limit)
    search = planner.SearchFilter(
        account_id=caller.account_id,
        needle=query.lower(),
        type=STORED_TYPES.get(type) if type else None,
        labels=parse_filter(labels),
    )
    scope = scope_of(
        "profiles.search",
        search.account_id,
        search.needle,
        search.type,
        sorted(search.labels.items()),
    )
    after: tuple[str, str] | None = None
    total: int | None = None
    if cursor:
        position = cursors.decode(cursor, scope=scope)
        after, total = (position["n"], position["i"]), position["t"]
    if text.has_control(search.needle):
        # Stored names and emails never hold control characters.
        return ProfileList.render([], next_cursor="", total=0)
    plan = planner.Plan(session, search)
    if total is None:
        # Counted on the first page only; later pages carry it in the cursor.
        total = plan.count()
    rows = plan.page(after=after, limit=size + 1, total=total)
    next_cursor = ""
    if len(rows) > size:
        rows = rows[:size]
        last = rows[-1]
        next_cursor = cursors.encode({"n": last.name_key, "i": last.id, "t": total}, scope=scope)
    return ProfileList.render(rows, next_cursor=next_cursor, total=total)


def whoami(*, session: Session, caller: Caller) -> WhoamiResponse:
    """The caller's profile and the workspace it lands in by default."""
    row = repository.get(session, account_id=caller.account_id, profile_id=caller.profile_id)
    if row is None:
        raise NotFound("the caller's profile no longer exists")
    workspace = workspaces.default_for(session=session, caller=caller)
    return WhoamiResponse(
        profile=Profile.of(row),
        default_workspace=(
            Workspace.of(workspace).metadata if workspace else AccountResourceMetadata.empty()
        ),
    )


API_KEY = "api_key"
# How the profiles this resource does not add are made.
_MADE_ELSEWHERE = {
    ProfileType.API_KEY: "API key profiles come with an API key: create one with "
    "POST /v1/account/api_keys",
    ProfileType.SYSTEM: "system profiles are made by `cadenya-server profiles import` "
    "(a row of type system)",
}


def _one_name(*names: str) -> str:
    """metadata.name and spec.name are one field: given twice, they must agree."""
    given = {name for name in names if name}
    if len(given) > 1:
        raise InvalidArgument.field(
            "spec.name", "metadata.name and spec.name name the same field; they differ"
        )
    return given.pop() if given else ""


def _taken(email: str) -> AlreadyExists:
    return AlreadyExists(f"a profile with the email {email!r} already exists in this account")


PROFILES = quotas.Quota(
    "profiles", "CADENYA_SERVER_MAX_PROFILES_PER_ACCOUNT", "remove one to make room"
)


def _require_room(session: Session, caller: Caller, max_profiles: int) -> None:
    """400 when the account holds `max_profiles` profiles, without making every writer
    of the account wait for the one before while it is far from the limit.

    A writer holds a stripe of the account's gram counts from before it counts until it
    commits (search.index.hold_stripe), so at most STRIPES - 1 other creates are between
    their count and their commit: with room for STRIPES it need not wait for anyone.
    Near the limit it waits for every other writer and counts exactly. (Imports and API
    keys add profiles without this check, as before.)
    """
    account_id = caller.account_id

    def count() -> int:
        return planner.Plan(session, planner.SearchFilter(account_id=account_id)).count()

    striped = index.dialect(session) == "postgresql"
    if striped and count() + 2 * index.STRIPES <= max_profiles:
        index.hold_stripe(session, account_id)
        if count() + index.STRIPES <= max_profiles:
            return
        # The count jumped by more than the margin between two statements.
        raise Unavailable("the account is filling up to its profile limit right now; retry")
    index.hold_all_stripes(session, account_id)
    PROFILES.require_room(session, account_id=account_id, limit=max_profiles, count=count)


def create(
    *, session: Session, caller: Caller, body: CreateUserProfileRequest, max_profiles: int
) -> UserProfile:
    """A new user profile; 409 when the email is already used in the account, 400 when
    the account holds `max_profiles` profiles."""
    if body.spec.type in _MADE_ELSEWHERE:
        raise InvalidArgument.field("spec.type", _MADE_ELSEWHERE[body.spec.type])
    row = _add_user(
        session,
        caller,
        name=_one_name(body.metadata.name, body.spec.name),
        email=body.spec.email,
        role=body.spec.role.value,
        external_id=body.metadata.external_id,
        labels=label_rules.validate(body.metadata.labels),
        max_profiles=max_profiles,
    )
    return UserProfile.of(row)


def _add_user(
    session: Session,
    caller: Caller,
    *,
    name: str,
    email: str,
    role: str,
    external_id: str,
    labels: dict[str, str],
    max_profiles: int,
) -> ProfileRow:
    if email and repository.by_email(session, account_id=caller.account_id, email=email):
        raise _taken(email)
    _require_room(session, caller, max_profiles)
    row = repository.add_user(
        session,
        account_id=caller.account_id,
        name=name,
        email=email,
        role=role,
        external_id=external_id,
        labels=labels,
        creator_profile_id=caller.profile_id,
    )
    if row is None:
        raise _taken(email)
    audit.record(
        session,
        caller=caller,
        action="profile.create",
        resource_id=row.id,
        details={"role": row.role},
        resource=UserProfile.of(row),
    )
    return row


def invite(*, session: Session, caller: Caller, email: str, max_profiles: int) -> ProfileRow:
    """The account's profile with this email, or a new user profile (role member) for it."""
    existing = repository.by_email(session, account_id=caller.account_id, email=email)
    if existing is not None:
        return existing
    _require_room(session, caller, max_profiles)
    row = repository.add_user(
        session,
        account_id=caller.account_id,
        name="",
        email=email,
        role=ROLE_MEMBER,
        creator_profile_id=caller.profile_id,
    )
    if row is None:
        # Invited by a concurrent call a moment ago.
        row = repository.by_email(session, account_id=caller.account_id, email=email)
        if row is None:
            raise _taken(email)
        return row
    audit.record(
        session,
        caller=caller,
        action="profile.create",
        resource_id=row.id,
        details={"role": row.role, "invited": True},
        resource=UserProfile.of(row),
    )
    return row


def _find(session: Session, caller: Caller, profile_id: str) -> ProfileRow:
    row = repository.get(session, account_id=caller.account_id, profile_id=profile_id)
    if row is None:
        raise NotFound(f"profile {profile_id!r} not found")
    return row


def _not_an_api_key(row: ProfileRow) -> None:
    if row.type == API_KEY:
        raise FailedPrecondition(
            "this profile belongs to an API key; manage it under /v1/account/api_keys"
        )


def _keep_an_administrator(session: Session, row: ProfileRow) -> None:
    """400 when `row` is the account's last (active) administrator."""
    if row.type != repository.USER or row.role != ROLE_ADMIN or row.deactivated_at is not None:
        return
    admins = repository.lock_admin_ids(session, account_id=row.account_id)
    if admins == [row.id]:
        raise FailedPrecondition(
            "this is the account's last administrator; make another profile admin first"
        )


def _not_the_callers_own(caller: Caller, profile_id: str, *, what: str) -> None:
    """400 when an administrator would remove or demote their own profile: they would be
    locked out (another administrator can)."""
    if caller.profile_id == profile_id:
        raise FailedPrecondition(
            f"a profile cannot {what} itself: the caller would be locked out; "
            "ask another administrator"
        )


def get(*, session: Session, caller: Caller, profile_id: str) -> UserProfile:
    """Any profile of the account (users, API keys, system), with its role."""
    return UserProfile.of(_find(session, caller, profile_id))


def workspaces_of(
    *, session: Session, caller: Caller, profile_id: str, page: PageRequest
) -> WorkspaceList:
    """The active workspaces a profile of the account is a member of (an API key's are its
    assignments, under /v1/account/api_keys)."""
    row = _find(session, caller, profile_id)
    return workspaces.list_member_of(session=session, caller=caller, profile_id=row.id, page=page)


def update(
    *, session: Session, caller: Caller, profile_id: str, body: UpdateUserProfileRequest
) -> UserProfile:
    """Change the name, external id, labels or role the update mask names."""
    paths = update_mask.paths(body.update_mask, body, allowed=UPDATABLE)
    metadata = body.metadata or UserProfileMetadataInput()
    spec = body.spec or UpdateUserProfileSpec()
    if "spec.role" in paths and spec.role is None:
        raise InvalidArgument.field("spec.role", "must be admin or member")
    row = _find(session, caller, profile_id)
    _not_an_api_key(row)
    names = {"metadata.name": metadata.name, "spec.name": spec.name}
    if named := [name for field, name in names.items() if field in paths]:
        repository.set_text(row, name=_one_name(*named), email=row.email)
    if "metadata.externalId" in paths:
        row.external_id = metadata.external_id
    if "metadata.labels" in paths:
        repository.set_labels(session, row, label_rules.validate(metadata.labels))
    if "spec.role" in paths and spec.role != row.role:
        if spec.role != ROLE_ADMIN:
            _not_the_callers_own(caller, row.id, what="demote")
            _keep_an_administrator(session, row)
        row.role = spec.role.value
    if paths:
        audit.record(
            session,
            caller=caller,
            action="profile.update",
            resource_id=row.id,
            details={"fields": sorted(paths), "role": row.role},
            resource=UserProfile.of(row),
        )
    return UserProfile.of(row)


def delete(*, session: Session, caller: Caller, profile_id: str) -> None:
    """Remove a user profile and its workspace memberships; never the last administrator."""
    _not_the_callers_own(caller, profile_id, what="remove")
    row = _find(session, caller, profile_id)
    _not_an_api_key(row)
    _keep_an_administrator(session, row)
    before = UserProfile.of(row)
    repository.remove(session, row)
    audit.record(
        session, caller=caller, action="profile.delete", resource_id=profile_id, resource=before
    )


# --- For SCIM (scim/): people as an identity provider sees them ---------------------------


def _find_user(session: Session, caller: Caller, profile_id: str) -> ProfileRow:
    row = _find(session, caller, profile_id)
    if row.type != repository.USER:
        raise NotFound(f"profile {profile_id!r} not found")
    return row


def add_person(
    *, session: Session, caller: Caller, name: str, email: str, external_id: str, max_profiles: int
) -> ProfileRow:
    """A new person (role member) as an identity provider provisions them; `email` may be
    empty. 409 when the email is taken, 400 when the account is full."""
    return _add_user(
        session,
        caller,
        name=text.clean_name(name, field="displayName"),
        email=text.clean_email(email, field="userName", required=False),
        role=ROLE_MEMBER,
        external_id=text.clean_name(external_id, field="externalId"),
        labels={},
        max_profiles=max_profiles,
    )


def find_user(*, session: Session, caller: Caller, profile_id: str) -> ProfileRow:
    """A user profile of the caller's account; 404 for any other profile."""
    return _find_user(session, caller, profile_id)


def change_email(*, session: Session, caller: Caller, profile_id: str, email: str) -> ProfileRow:
    """A person's new email (an identity provider renamed them); 409 when it is taken."""
    row = _find_user(session, caller, profile_id)
    email = text.clean_email(email, field="userName", required=False)
    if text.email_key(email) == row.email_key:
        if email != row.email:
            repository.set_text(row, name=row.name, email=email)
        return row
    if email and repository.by_email(session, account_id=caller.account_id, email=email):
        raise _taken(email)
    repository.set_text(row, name=row.name, email=email)
    audit.record(
        session,
        caller=caller,
        action="profile.update",
        resource_id=row.id,
        details={"fields": ["spec.email"], "role": row.role},
        resource=UserProfile.of(row),
    )
    return row


def set_active(*, session: Session, caller: Caller, profile_id: str, active: bool) -> ProfileRow:
    """Deactivate a person (they can neither sign in nor call the API, nor can the keys
    they issued) or restore them; never the account's last active administrator."""
    row = _find_user(session, caller, profile_id)
    if active == (row.deactivated_at is None):
        return row
    if active:
        row.deactivated_at = None
    else:
        _not_the_callers_own(caller, row.id, what="deactivate")
        _keep_an_administrator(session, row)
        row.deactivated_at = now()
    audit.record(
        session,
        caller=caller,
        action="profile.reactivate" if active else "profile.deactivate",
        resource_id=row.id,
        resource=UserProfile.of(row),
    )
    return row


def users_where(
    *, session: Session, caller: Caller, email: str | None = None, external_id: str | None = None
) -> list[ProfileRow]:
    """The caller's account's people with this email or external id (index look-ups)."""
    return repository.users_where(
        session, account_id=caller.account_id, email=email, external_id=external_id
    )


def users_page(*, session: Session, caller: Caller, offset: int, limit: int) -> list[ProfileRow]:
    """The caller's account's people in name order, from `offset`."""
    return repository.users_page(session, account_id=caller.account_id, offset=offset, limit=limit)


def count_users(*, session: Session, caller: Caller) -> int:
    """How many people the caller's account has (from the search's counts)."""
    return planner.Plan(
        session, planner.SearchFilter(account_id=caller.account_id, type=repository.USER)
    ).count()


# --- For the other features ------------------------------------------------------------


def add_row(
    *,
    session: Session,
    account_id: str,
    type: str,
    name: str,
    email: str,
    role: str = ROLE_MEMBER,
    labels: dict[str, str] | None = None,
    external_id: str = "",
    creator_profile_id: str = "",
) -> ProfileRow:
    """A new profile (an account's first administrator, an API key's), already checked."""
    return repository.add(
        session,
        account_id=account_id,
        type=type,
        name=name,
        email=email,
        role=role,
        labels=labels,
        external_id=external_id,
        creator_profile_id=creator_profile_id,
    )


def find_user_by_email(*, session: Session, account_id: str, email: str) -> ProfileRow | None:
    """The account's profile with this email (compared case-insensitively), or None."""
    return repository.by_email(session, account_id=account_id, email=email)


def add_at_sign_in(
    *, session: Session, caller: Caller, email: str, name: str, role: str, max_profiles: int
) -> ProfileRow:
    """A user profile for a person signing in for the first time, audited and announced as
    an administrator's POST /v1/account/profiles is; `caller` names the account and the
    request (its profile is empty: no one is signed in yet)."""
    _require_room(session, caller, max_profiles)
    row = repository.add_user(
        session,
        account_id=caller.account_id,
        name=name,
        email=email,
        role=role,
        creator_profile_id="",
    )
    if row is None:
        raise _taken(email)
    audit.record(
        session,
        caller=replace(caller, profile_id=row.id),
        action="profile.create",
        resource_id=row.id,
        details={"role": row.role, "signIn": True},
        resource=UserProfile.of(row),
    )
    return row


def set_role_at_sign_in(*, session: Session, caller: Caller, row: ProfileRow, role: str) -> None:
    """The role the identity provider's claims give, applied at sign-in and audited and
    announced as an administrator's change is; the account's last administrator stays one."""
    if row.role == role:
        return
    if role != ROLE_ADMIN:
        try:
            _keep_an_administrator(session, row)
        except FailedPrecondition:
            log.warning("kept the last administrator's role at sign-in", profile_id=row.id)
            return
    row.role = role
    audit.record(
        session,
        caller=caller,
        action="profile.update",
        resource_id=row.id,
        details={"fields": ["spec.role"], "role": role, "signIn": True},
        resource=UserProfile.of(row),
    )


def find_row(*, session: Session, account_id: str, profile_id: str) -> ProfileRow | None:
    """A profile of this account, or None (also for another account's id)."""
    return repository.get(session, account_id=account_id, profile_id=profile_id)


def creators(
    *, session: Session, account_id: str, profile_ids: Iterable[str]
) -> dict[str, Profile]:
    """These profiles of this account by id, as the wire shows a resource's creator."""
    rows = repository.by_ids(session, account_id=account_id, profile_ids=profile_ids)
    return {profile_id: Profile.of(row) for profile_id, row in rows.items()}


def mirror_api_key(
    *,
    session: Session,
    account_id: str,
    profile_id: str,
    name: str,
    external_id: str,
    labels: dict[str, str],
) -> None:
    """An API key's profile carries the key's name, external id and labels."""
    profile = repository.get(session, account_id=account_id, profile_id=profile_id)
    if profile is None:
        return
    repository.set_text(profile, name=name, email="")
    profile.external_id = external_id
    repository.set_labels(session, profile, labels)


def remove_row(*, session: Session, profile_id: str) -> None:
    """Delete a profile by id (an API key's, after the key)."""
    repository.delete_by_id(session, profile_id)
