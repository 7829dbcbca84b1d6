"""User profiles: administrators add, change and remove the people of the account."""

from __future__ import annotations

from sqlalchemy.orm import Session

from cadenya_server.audit import service as audit
from cadenya_server.auth.caller import ROLE_ADMIN, ROLE_MEMBER, Caller
from cadenya_server.kit import labels as label_rules
from cadenya_server.kit import update_mask
from cadenya_server.kit.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from cadenya_server.models import Profile as ProfileRow
from cadenya_server.profiles import repository as profiles
from cadenya_server.user_profiles import repository
from cadenya_server.user_profiles.schemas import (
    UPDATABLE,
    CreateUserProfileRequest,
    UpdateUserProfileRequest,
    UpdateUserProfileSpec,
    UserProfile,
    UserProfileMetadataInput,
)

API_KEY = "api_key"


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


def create(*, session: Session, caller: Caller, body: CreateUserProfileRequest) -> UserProfile:
    """A new user profile; 409 when the email is already used in the account."""
    email = body.spec.email
    name = _one_name(body.metadata.name, body.spec.name)
    labels = label_rules.validate(body.metadata.labels)
    if repository.by_email(session, account_id=caller.account_id, email=email) is not None:
        raise _taken(email)
    row = repository.add_user(
        session,
        account_id=caller.account_id,
        name=name,
        email=email,
        role=body.spec.role.value,
        external_id=body.metadata.external_id,
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
    )
    return UserProfile.of(row)


def invite(*, session: Session, caller: Caller, email: str) -> ProfileRow:
    """The account's profile with this email, or a new user profile (role member) for it."""
    existing = repository.by_email(session, account_id=caller.account_id, email=email)
    if existing is not None:
        return existing
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
    )
    return row


def _find(session: Session, caller: Caller, profile_id: str) -> ProfileRow:
    row = profiles.get(session, account_id=caller.account_id, profile_id=profile_id)
    if row is None:
        raise NotFound(f"profile {profile_id!r} not found")
    return row


def _not_an_api_key(row: ProfileRow) -> None:
    if row.type == API_KEY:
        raise FailedPrecondition(
            "this profile belongs to an API key; manage it under /v1/account/api_keys"
        )


def _keep_an_administrator(session: Session, row: ProfileRow) -> None:
    """400 when `row` is the account's last administrator."""
    if row.type != repository.USER or row.role != ROLE_ADMIN:
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
        profiles.set_text(row, name=_one_name(*named), email=row.email)
    if "metadata.externalId" in paths:
        row.external_id = metadata.external_id
    if "metadata.labels" in paths:
        profiles.set_labels(session, row, label_rules.validate(metadata.labels))
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
        )
    return UserProfile.of(row)


def delete(*, session: Session, caller: Caller, profile_id: str) -> None:
    """Remove a user profile and its workspace memberships; never the last administrator."""
    _not_the_callers_own(caller, profile_id, what="remove")
    row = _find(session, caller, profile_id)
    _not_an_api_key(row)
    _keep_an_administrator(session, row)
    repository.delete(session, row)
    audit.record(session, caller=caller, action="profile.delete", resource_id=profile_id)
