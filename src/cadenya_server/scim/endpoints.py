"""/scim/v2: SCIM 2.0 for identity providers (Okta, Entra ID, ...), with an API key holding
the scope scim:manage. One route takes every path and method; scim2-server routes them
(Users, Groups, ServiceProviderConfig, ResourceTypes, Schemas, .search)."""

from __future__ import annotations

import json
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request, Response
from scim2_server.requests import ScimRequest

from cadenya_server.auth import scopes
from cadenya_server.auth.caller import Caller
from cadenya_server.auth.dependencies import rule
from cadenya_server.kit.runtime import AppRuntime, DbSession
from cadenya_server.scim import service
from cadenya_server.scim.schemas import PREFIX

router = APIRouter(prefix=PREFIX, tags=["SCIM"])

ScimCaller = Annotated[Caller, Depends(rule(scopes.SCIM_MANAGE))]


async def _body(request: Request) -> bytes:
    """The raw body, read on the event loop (the handler runs in the thread pool)."""
    return await request.body()


RawBody = Annotated[bytes, Depends(_body)]


# Not in the OpenAPI document: SCIM describes itself at /scim/v2/ServiceProviderConfig,
# /Schemas and /ResourceTypes (RFC 7644 §4), and answers in its own media type and errors.
@router.api_route(
    "/{path:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    include_in_schema=False,
)
def scim(
    path: str,
    request: Request,
    caller: ScimCaller,
    session: DbSession,
    runtime: AppRuntime,
    body: RawBody,
) -> Response:
    """Any SCIM request, in the request's one transaction."""
    answer = service.handle(
        session=session,
        caller=caller,
        settings=runtime.settings,
        request=ScimRequest(
            method=request.method,
            base_url=str(request.base_url).rstrip("/") + PREFIX,
            path="/" + path,
            query=dict(parse_qsl(request.url.query, keep_blank_values=True)),
            headers=list(request.headers.items()),
            body=body,
        ),
    )
    return Response(
        b"" if answer.body is None else json.dumps(answer.body).encode(),
        status_code=int(answer.status),
        headers=answer.headers,
    )
