"""API keys: each one a token and a profile of type API key.

A key never lets its holder exceed what the holder already has: whoever
creates, changes, rotates, reveals, enables, disables or deletes a key must
hold every scope the key holds (before and after the change) and reach every
workspace it reaches. So a key with `api_keys:manage` but not `*` can neither
mint a `*` key nor reveal or rotate one, and a key assigned to some workspaces
cannot hand out a key that reaches others.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.orm import Session

from cadenya_server.api_keys import repository
from cadenya_server.api_keys.schemas import (
    UPDATABLE,
    ApiKey,
    ApiKeyList,
    ApiKeySpecInput,
    CreateApiKeyRequest,
    UpdateApiKeyRequest,
)
from cadenya_server.audit import service as audit
from cadenya_server.auth import api_key_tokens, scopes
from cadenya_server.auth import service as auth
from cadenya_server.auth.caller import Caller
from cadenya_server.kit import labels as label_rules
from cadenya_server.kit import quotas, update_mask
from cadenya_server.kit.crypto import Keyring
from cadenya_server.kit.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from cadenya_server.kit.ids import new_id
from cadenya_server.kit.labels import parse_filter
from cadenya_server.kit.pagination import PageRequest, id_page, scope_of, within_bytes
from cadenya_server.kit.schemas import Pagination
from cadenya_server.models import ApiKey as ApiKeyRow
from cadenya_server.models import Workspace as WorkspaceRow
from cadenya_server.profiles import service as profiles
from cadenya_server.profiles.schemas import Profile, nobody
from cadenya_server.workspaces import service as workspaces

# Keys whose workspace assignments are read in one query while rendering.
RENDER_BATCH = 50
KEYS = quotas.Quota(
    "API keys", "CADENYA_SERVER_MAX_API_KEYS_PER_ACCOUNT", "delete one to make room"
)
ASSIGNMENTS = quotas.Quota(
    "assigned workspaces",
    "CADENYA_SERVER_MAX_WORKSPACES_PER_API_KEY",
    "remove one, or let the key reach every workspace (allWorkspaces)",
    holder="an API key",
)


@dataclass(frozen=True)
class KeyLimits:
    """The operator's quotas on API keys."""

    keys_per_account: int
    workspaces_per_key: int


def _require_assignable(limits: KeyLimits, *, held: int, adding: int) -> None:
    ASSIGNMENTS.refuse_beyond(limit=limits.workspaces_per_key, used=held, adding=adding)


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKeyRow
    token: str


def issue(
    *,
    session: Session,
    keyring: Keyring,
    account_id: str,
    name: str,
    permissions: list[str],
    creator_profile_id: str,
    description: str = "",
    all_workspaces: bool = False,
    is_default: bool = False,
    external_id: str = "",
    labels: dict[str, str] | None = None,
) -> IssuedKey:
    """A new key, its profile, and the one time its token is known in clear."""
    profile = profiles.add_row(
        session=session,
        account_id=account_id,
        type="api_key",
        name=name,
        email="",
        external_id=external_id,
        labels=labels,
        creator_profile_id=creator_profile_id,
    )
    key = ApiKeyRow(
        id=new_id("apikey"),
        account_id=account_id,
        profile_id=profile.id,
        name=name,
        description=description,
        external_id=external_id,
        labels=dict(labels or {}),
        permissions=scopes.normalize(permissions),
        all_workspaces=all_workspaces,
        is_default=is_default,
        creator_profile_id=creator_profile_id,
    )
    token = set_token(session, key, keyring=keyring)
    session.add(key)
    session.flush()
    return IssuedKey(key=key, token=token)


def set_token(session: Session, key: ApiKeyRow, *, keyring: Keyring) -> str:
    """Give the key a fresh token; the old one stops working when this commits, and so do
    the console sessions started with it."""
    if key.token_hash:
        auth.end_key_sessions(session, api_key_hash=key.token_hash)
    token = api_key_tokens.generate()
    key.token_hash = keyring.token_hash(token)
    key.token_ciphertext = keyring.encrypt(token, context=key.id)
    key.token_hint = token[-4:]
    return token


@dataclass(frozen=True)
class Reach:
    """What a key lets its holder do: its scopes and the workspaces it reaches."""

    scopes: frozenset[str]
    all_workspaces: bool
    workspace_ids: frozenset[str]


def _reach_of(session: Session, key: ApiKeyRow) -> Reach:
    assigned = repository.assigned_workspace_ids(session, [key.id]).get(key.id, [])
    return Reach(frozenset(key.permissions), key.all_workspaces, frozenset(assigned))


def _reach_of_caller(session: Session, caller: Caller) -> Reach:
    if not caller.api_key_id:
        # A user: an administrator reaches every workspace of the account.
        return Reach(caller.scopes, True, frozenset())
    own = repository.get(session, account_id=caller.account_id, api_key_id=caller.api_key_id)
    if own is None:
        # Deleted since this request authenticated: it reaches nothing any more.
        return Reach(frozenset(), False, frozenset())
    return _reach_of(session, own)


def _require_within(mine: Reach, theirs: Reach, *, what: str) -> None:
    """403 unless `mine` holds every scope and workspace of `theirs`."""
    for scope in sorted(theirs.scopes):
        if not scopes.grants(mine.scopes, scope):
            raise PermissionDenied(f"{what} holds {scope!r}, which you do not hold")
    if mine.all_workspaces:
        return
    if theirs.all_workspaces:
        raise PermissionDenied(f"{what} reaches every workspace, and you do not")
    beyond = sorted(theirs.workspace_ids - mine.workspace_ids)
    if beyond:
        raise PermissionDenied(f"{what} reaches workspace {beyond[0]!r}, which you do not")


def _find(session: Session, caller: Caller, api_key_id: str, *, lock: bool = False) -> ApiKeyRow:
    key = repository.get(
        session, account_id=caller.account_id, api_key_id=api_key_id, for_update=lock
    )
    if key is None:
        raise NotFound(f"API key {api_key_id!r} not found")
    return key


def _manageable(session: Session, caller: Caller, api_key_id: str) -> tuple[ApiKeyRow, Reach]:
    """The key, row-locked, once the caller may manage it; and the caller's own reach."""
    key = _find(session, caller, api_key_id, lock=True)
    mine = _reach_of_caller(session, caller)
    _require_within(mine, _reach_of(session, key), what="this key")
    return key, mine


def _rendered(
    session: Session,
    *,
    account_id: str,
    rows: list[ApiKeyRow],
    include_info: bool,
    token: str | None = None,
) -> Iterator[ApiKey]:
    """Keys as the wire shows them; a given `token` is shown in clear (create, rotate, reveal).

    Lazily, a few keys' assignments at a time: a listing stops reading once its page is full.
    """
    creators: dict[str, Profile] = {}
    active: dict[str, WorkspaceRow] = {}
    if include_info:
        creators = profiles.creators(
            session=session,
            account_id=account_id,
            profile_ids={r.creator_profile_id for r in rows},
        )
        active = {w.id: w for w in workspaces.active_rows(session=session, account_id=account_id)}
    for start in range(0, len(rows), RENDER_BATCH):
        batch = rows[start : start + RENDER_BATCH]
        assigned = repository.assigned_workspace_ids(session, [row.id for row in batch])
        for row in batch:
            held = assigned.get(row.id, [])
            reaches = (
                list(active.values())
                if row.all_workspaces
                else [active[w] for w in held if w in active]
            )
            yield ApiKey.of(
                row,
                token=token,
                assigned=held,
                created_by=creators.get(row.creator_profile_id) or nobody(),
                reaches=reaches,
            )


def _one(session: Session, caller: Caller, row: ApiKeyRow, *, token: str | None = None) -> ApiKey:
    (rendered,) = _rendered(
        session, account_id=caller.account_id, rows=[row], include_info=True, token=token
    )
    return rendered


def _assignable(
    session: Session, caller: Caller, requested: Iterable[str], *, held: Iterable[str] = ()
) -> list[str]:
    """The requested workspace ids, deduplicated; 404 for one outside the account, and 400
    for an archived one the key does not hold yet."""
    ids = list(dict.fromkeys(requested))
    found = {
        w.id: w
        for w in workspaces.rows_by_ids(
            session=session, account_id=caller.account_id, workspace_ids=ids
        )
    }
    already = set(held)
    for workspace_id in ids:
        workspace = found.get(workspace_id)
        if workspace is None:
            raise NotFound(f"workspace {workspace_id!r} not found")
        if workspace.status == workspaces.ARCHIVED and workspace_id not in already:
            raise FailedPrecondition(f"workspace {workspace_id!r} is archived")
    return ids


def _requested_workspaces(all_workspaces: bool, spec: ApiKeySpecInput) -> list[str]:
    requested = [a.workspace_id for a in spec.workspace_assignments]
    if all_workspaces and requested:
        raise InvalidArgument.field(
            "spec.workspaceAssignments", "must be empty when allWorkspaces is true"
        )
    return requested


def _sync_profile(session: Session, key: ApiKeyRow) -> None:
    """The key's profile carries the key's name, external id and labels."""
    profiles.mirror_api_key(
        session=session,
        account_id=key.account_id,
        profile_id=key.profile_id,
        name=key.name,
        external_id=key.external_id,
        labels=key.labels,
    )


def list_keys(
    *,
    session: Session,
    caller: Caller,
    workspace_id: str,
    query: str,
    prefix: str,
    labels: str | None,
    sort_order: Literal["asc", "desc"],
    include_info: bool,
    page: PageRequest,
    max_page_bytes: int,
) -> ApiKeyList:
    """One page of the account's keys in creation order, with the number that match.

    A page ends early, with a cursor to the rest, before the key that would take it past
    `max_page_bytes`: each key embeds the workspaces it reaches.
    """
    if (
        workspace_id
        and workspaces.find_row(
            session=session, account_id=caller.account_id, workspace_id=workspace_id
        )
        is None
    ):
        raise NotFound(f"workspace {workspace_id!r} not found")
    where = repository.KeyFilter(
        account_id=caller.account_id,
        workspace_id=workspace_id or None,
        needle=query.lower(),
        prefix=prefix.lower(),
        labels=parse_filter(labels),
        descending=sort_order == "desc",
    )
    scope = scope_of(
        "api_keys.list",
        where.account_id,
        where.workspace_id,
        where.needle,
        where.prefix,
        sorted(where.labels.items()),
        where.descending,
    )
    rows, next_cursor = id_page(
        page,
        scope=scope,
        fetch=lambda after, n: repository.page(session, where, after=after, limit=n),
    )
    items, next_cursor = within_bytes(
        page,
        rows=rows,
        rendered=_rendered(
            session, account_id=caller.account_id, rows=rows, include_info=include_info
        ),
        next_cursor=next_cursor,
        scope=scope,
        max_bytes=max_page_bytes,
    )
    return ApiKeyList(
        items=items,
        pagination=Pagination(next_cursor=next_cursor, total=repository.count(session, where)),
    )


def get(*, session: Session, caller: Caller, api_key_id: str) -> ApiKey:
    """A key of the caller's account, its token masked."""
    return _one(session, caller, _find(session, caller, api_key_id))


def create(
    *,
    session: Session,
    keyring: Keyring,
    caller: Caller,
    body: CreateApiKeyRequest,
    limits: KeyLimits,
) -> ApiKey:
    """A new key, enabled, with its token in clear this once."""
    spec = body.spec
    permissions = scopes.normalize(spec.permissions)
    requested = _requested_workspaces(spec.all_workspaces, spec)
    _require_assignable(limits, held=0, adding=len(set(requested)))
    workspace_ids = _assignable(session, caller, requested)
    KEYS.require_room(
        session,
        account_id=caller.account_id,
        limit=limits.keys_per_account,
        count=lambda: repository.count(session, repository.KeyFilter(account_id=caller.account_id)),
    )
    _require_within(
        _reach_of_caller(session, caller),
        Reach(frozenset(permissions), spec.all_workspaces, frozenset(workspace_ids)),
        what="the new key",
    )
    issued = issue(
        session=session,
        keyring=keyring,
        account_id=caller.account_id,
        name=body.metadata.name,
        permissions=permissions,
        creator_profile_id=caller.profile_id,
        description=spec.description,
        all_workspaces=spec.all_workspaces,
        external_id=body.metadata.external_id,
        labels=label_rules.validate(body.metadata.labels),
    )
    repository.assign(session, issued.key, workspace_ids)
    audit.record(
        session,
        caller=caller,
        action="api_key.create",
        resource_id=issued.key.id,
        details={
            "permissions": permissions,
            "allWorkspaces": spec.all_workspaces,
            "workspaceIds": workspace_ids,
        },
        resource=_one(session, caller, issued.key),
    )
    return _one(session, caller, issued.key, token=issued.token)


def update(
    *,
    session: Session,
    caller: Caller,
    api_key_id: str,
    body: UpdateApiKeyRequest,
    limits: KeyLimits,
) -> ApiKey:
    """Change the fields the update mask names (or, without one, those in the body)."""
    paths = update_mask.paths(body.update_mask, body, allowed=UPDATABLE)
    key, mine = _manageable(session, caller, api_key_id)
    spec = body.spec or ApiKeySpecInput()
    update_mask.apply_metadata(key, body.metadata, paths)
    if "spec.description" in paths:
        key.description = spec.description
    if "spec.permissions" in paths:
        key.permissions = scopes.normalize(spec.permissions)
    if "spec.allWorkspaces" in paths:
        key.all_workspaces = spec.all_workspaces
    held = repository.assigned_workspace_ids(session, [key.id]).get(key.id, [])
    if key.all_workspaces:
        # Reaching every workspace makes single assignments meaningless.
        if "spec.allWorkspaces" in paths:
            workspace_ids = _requested_workspaces(True, spec)
        elif "spec.workspaceAssignments" in paths and spec.workspace_assignments:
            raise FailedPrecondition(
                "this key reaches every workspace; set allWorkspaces to false to assign some"
            )
        else:
            workspace_ids = []
    elif "spec.workspaceAssignments" in paths:
        requested = _requested_workspaces(False, spec)
        _require_assignable(limits, held=0, adding=len(set(requested)))
        workspace_ids = _assignable(session, caller, requested, held=held)
    else:
        workspace_ids = held
    _require_within(
        mine,
        Reach(frozenset(key.permissions), key.all_workspaces, frozenset(workspace_ids)),
        what="the key after this change",
    )
    repository.unassign(session, key, [w for w in held if w not in workspace_ids])
    repository.assign(session, key, workspace_ids)
    if paths & {"metadata.name", "metadata.externalId", "metadata.labels"}:
        _sync_profile(session, key)
    if paths:
        audit.record(
            session,
            caller=caller,
            action="api_key.update",
            resource_id=key.id,
            details={"fields": sorted(paths)},
            resource=_one(session, caller, key),
        )
    return _one(session, caller, key)


def _not_the_callers_own(caller: Caller, api_key_id: str, *, what: str) -> None:
    """400 when a key would disable or delete itself: its holder would be locked out."""
    if caller.api_key_id == api_key_id:
        raise FailedPrecondition(
            f"an API key cannot {what} itself: the caller would be locked out; "
            "use another key or an administrator's token"
        )


def delete(*, session: Session, caller: Caller, api_key_id: str) -> None:
    """Delete the key and its profile; its token stops working when this commits."""
    _not_the_callers_own(caller, api_key_id, what="delete")
    key, _ = _manageable(session, caller, api_key_id)
    audit.record(
        session,
        caller=caller,
        action="api_key.delete",
        resource_id=key.id,
        details={"name": key.name},
        resource=_one(session, caller, key),
    )
    profile_id = key.profile_id
    auth.end_key_sessions(session, api_key_hash=key.token_hash)
    repository.remove(session, key)
    # The profile it acted as goes with it (and its labels).
    profiles.remove_row(session=session, profile_id=profile_id)


def rotate(*, session: Session, keyring: Keyring, caller: Caller, api_key_id: str) -> ApiKey:
    """A new token for the key, in clear this once; the old one stops working at commit."""
    key, _ = _manageable(session, caller, api_key_id)
    token = set_token(session, key, keyring=keyring)
    audit.record(
        session,
        caller=caller,
        action="api_key.rotate",
        resource_id=key.id,
        resource=_one(session, caller, key),
    )
    return _one(session, caller, key, token=token)


def reveal(*, session: Session, keyring: Keyring, caller: Caller, api_key_id: str) -> ApiKey:
    """The key with its current token in clear; every reveal is audited."""
    key, _ = _manageable(session, caller, api_key_id)
    token = keyring.decrypt(key.token_ciphertext, context=key.id)
    audit.record(session, caller=caller, action="api_key.reveal", resource_id=key.id)
    return _one(session, caller, key, token=token)


def set_enabled(*, session: Session, caller: Caller, api_key_id: str, enabled: bool) -> ApiKey:
    """Enable or disable a key; a disabled key's token stops working when this commits."""
    if not enabled:
        _not_the_callers_own(caller, api_key_id, what="disable")
    key, _ = _manageable(session, caller, api_key_id)
    if key.enabled != enabled:
        key.enabled = enabled
        if not enabled:
            auth.end_key_sessions(session, api_key_hash=key.token_hash)
        audit.record(
            session,
            caller=caller,
            action="api_key.enable" if enabled else "api_key.disable",
            resource_id=key.id,
            resource=_one(session, caller, key),
        )
    return _one(session, caller, key)


def add_workspace(
    *, session: Session, caller: Caller, api_key_id: str, workspace_id: str, limits: KeyLimits
) -> ApiKey:
    """Assign a workspace to a key; assigning one it holds changes nothing."""
    key, mine = _manageable(session, caller, api_key_id)
    if key.all_workspaces:
        raise FailedPrecondition("this key already reaches every workspace")
    held = repository.assigned_workspace_ids(session, [key.id]).get(key.id, [])
    _assignable(session, caller, [workspace_id], held=held)
    if workspace_id not in held:
        _require_assignable(limits, held=len(held), adding=1)
        _require_within(
            mine,
            Reach(frozenset(key.permissions), False, frozenset([*held, workspace_id])),
            what="the key after this change",
        )
        repository.assign(session, key, [workspace_id])
        audit.record(
            session,
            caller=caller,
            action="api_key.add_workspace",
            resource_id=key.id,
            details={"workspaceId": workspace_id},
            resource=_one(session, caller, key),
        )
    return _one(session, caller, key)


def remove_workspace(
    *, session: Session, caller: Caller, api_key_id: str, workspace_id: str
) -> ApiKey:
    """Take a workspace from a key; removing one it does not hold changes nothing."""
    key, _ = _manageable(session, caller, api_key_id)
    if (
        workspaces.find_row(
            session=session, account_id=caller.account_id, workspace_id=workspace_id
        )
        is None
    ):
        raise NotFound(f"workspace {workspace_id!r} not found")
    if key.all_workspaces:
        raise FailedPrecondition(
            "this key reaches every workspace; set allWorkspaces to false to assign some"
        )
    held = repository.assigned_workspace_ids(session, [key.id]).get(key.id, [])
    if workspace_id in held:
        repository.unassign(session, key, [workspace_id])
        audit.record(
            session,
            caller=caller,
            action="api_key.remove_workspace",
            resource_id=key.id,
            details={"workspaceId": workspace_id},
            resource=_one(session, caller, key),
        )
    return _one(session, caller, key)
