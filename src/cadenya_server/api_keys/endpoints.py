"""/v1/account/api_keys: the account's API keys.

The custom methods (`{id}:rotate` and the like) are POST routes of their own;
the `{id}` routes answer only GET, PATCH and DELETE, so a verb is never read
as part of an id.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from cadenya_server.api_keys import service
from cadenya_server.api_keys.auth import ApiKeyId, ApiKeysManager, ApiKeysReader
from cadenya_server.api_keys.schemas import (
    ApiKey,
    ApiKeyList,
    CreateApiKeyRequest,
    UpdateApiKeyRequest,
    WorkspaceRequest,
)
from cadenya_server.kit.params import LabelFilter, NoBody, Page, query_id
from cadenya_server.kit.runtime import AppRuntime, DbSession, Runtime
from cadenya_server.kit.schemas import SINGLE_LINE, Empty

router = APIRouter(prefix="/v1/account/api_keys", tags=["API keys"])

WorkspaceFilter = query_id(
    "workspace",
    alias="workspaceId",
    description="Only keys that reach this workspace (assigned, or granted all)",
)


def _limits(runtime: Runtime) -> service.KeyLimits:
    settings = runtime.settings
    return service.KeyLimits(
        keys_per_account=settings.max_api_keys_per_account,
        workspaces_per_key=settings.max_workspaces_per_api_key,
    )


@router.get("", operation_id="apiKeys.list")
def list_api_keys(
    caller: ApiKeysReader,
    session: DbSession,
    runtime: AppRuntime,
    page: Page,
    workspace_id: WorkspaceFilter = "",
    query: Annotated[
        str,
        Query(
            max_length=200,
            pattern=SINGLE_LINE,
            description="Case-insensitive substring of the name or description",
        ),
    ] = "",
    prefix: Annotated[
        str,
        Query(
            max_length=200, pattern=SINGLE_LINE, description="Case-insensitive prefix of the name"
        ),
    ] = "",
    labels: LabelFilter = None,
    sort_order: Annotated[
        Literal["asc", "desc"],
        Query(alias="sortOrder", description="By creation time; default asc"),
    ] = "asc",
    include_info: Annotated[
        bool,
        Query(
            alias="includeInfo",
            description="Fill info.createdBy and info.workspaces (otherwise present but empty)",
        ),
    ] = False,
) -> ApiKeyList:
    """Lists the account's API keys, tokens masked."""
    return service.list_keys(
        session=session,
        caller=caller,
        workspace_id=workspace_id,
        query=query,
        prefix=prefix,
        labels=labels,
        sort_order=sort_order,
        include_info=include_info,
        page=page,
        max_page_bytes=runtime.settings.max_page_bytes,
    )


@router.post("", operation_id="apiKeys.create")
def create_api_key(
    caller: ApiKeysManager, session: DbSession, runtime: AppRuntime, body: CreateApiKeyRequest
) -> ApiKey:
    """Creates an API key; the response is the only one besides :rotate and :reveal that
    carries the whole token. The key cannot hold a scope or reach a workspace that the
    caller does not (403). 400 FAILED_PRECONDITION when the account holds its limit of
    keys, or the key would exceed its limit of assigned workspaces."""
    return service.create(
        session=session,
        keyring=runtime.keyring,
        caller=caller,
        body=body,
        limits=_limits(runtime),
    )


@router.get("/{id}", operation_id="apiKeys.retrieve")
def get_api_key(caller: ApiKeysReader, session: DbSession, api_key_id: ApiKeyId) -> ApiKey:
    """Gets an API key, its token masked."""
    return service.get(session=session, caller=caller, api_key_id=api_key_id)


@router.patch("/{id}", operation_id="apiKeys.update")
def update_api_key(
    caller: ApiKeysManager,
    session: DbSession,
    runtime: AppRuntime,
    api_key_id: ApiKeyId,
    body: UpdateApiKeyRequest,
) -> ApiKey:
    """Updates the fields named by `updateMask` (without one, the fields present in the body)."""
    return service.update(
        session=session, caller=caller, api_key_id=api_key_id, body=body, limits=_limits(runtime)
    )


@router.delete("/{id}", operation_id="apiKeys.delete")
def delete_api_key(caller: ApiKeysManager, session: DbSession, api_key_id: ApiKeyId) -> Empty:
    """Deletes an API key and its profile; its token stops working at once."""
    service.delete(session=session, caller=caller, api_key_id=api_key_id)
    return Empty()


@router.post("/{id}:rotate", operation_id="apiKeys.rotate")
def rotate_api_key(
    caller: ApiKeysManager,
    session: DbSession,
    runtime: AppRuntime,
    api_key_id: ApiKeyId,
    _body: NoBody = None,
) -> ApiKey:
    """Gives the key a new token, returned whole; the old token stops working at once."""
    return service.rotate(
        session=session, keyring=runtime.keyring, caller=caller, api_key_id=api_key_id
    )


@router.post("/{id}:reveal", operation_id="apiKeys.reveal")
def reveal_api_key(
    caller: ApiKeysManager,
    session: DbSession,
    runtime: AppRuntime,
    api_key_id: ApiKeyId,
    _body: NoBody = None,
) -> ApiKey:
    """Returns the key with its whole token. Needs api_keys:manage; audited."""
    return service.reveal(
        session=session, keyring=runtime.keyring, caller=caller, api_key_id=api_key_id
    )


@router.post("/{id}:enable", operation_id="apiKeys.enable")
def enable_api_key(
    caller: ApiKeysManager, session: DbSession, api_key_id: ApiKeyId, _body: NoBody = None
) -> ApiKey:
    """Enables a key."""
    return service.set_enabled(session=session, caller=caller, api_key_id=api_key_id, enabled=True)


@router.post("/{id}:disable", operation_id="apiKeys.disable")
def disable_api_key(
    caller: ApiKeysManager, session: DbSession, api_key_id: ApiKeyId, _body: NoBody = None
) -> ApiKey:
    """Disables a key; its token stops working at once, in every server process."""
    return service.set_enabled(session=session, caller=caller, api_key_id=api_key_id, enabled=False)


@router.post("/{id}:addWorkspace", operation_id="apiKeys.addWorkspace")
def add_api_key_workspace(
    caller: ApiKeysManager,
    session: DbSession,
    runtime: AppRuntime,
    api_key_id: ApiKeyId,
    body: WorkspaceRequest,
) -> ApiKey:
    """Assigns a workspace of the account to the key (400 if the key reaches all of them,
    or holds its limit of assigned workspaces)."""
    return service.add_workspace(
        session=session,
        caller=caller,
        api_key_id=api_key_id,
        workspace_id=body.workspace_id,
        limits=_limits(runtime),
    )


@router.post("/{id}:removeWorkspace", operation_id="apiKeys.removeWorkspace")
def remove_api_key_workspace(
    caller: ApiKeysManager, session: DbSession, api_key_id: ApiKeyId, body: WorkspaceRequest
) -> ApiKey:
    """Takes a workspace from the key (400 if the key reaches all of them)."""
    return service.remove_workspace(
        session=session, caller=caller, api_key_id=api_key_id, workspace_id=body.workspace_id
    )
