"""/scim/v2: SCIM 2.0 for identity providers (Okta, Entra ID, ...), with an API key holding
the scope scim:manage. One route takes every path and method; scim2-server routes them
(Users, Groups, ServiceProviderConfig, ResourceTypes, Schemas, .search)."""

from __future__ import annotations

import json
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request, Response
from scim2_server.requests import ScimRequest
from sqlalchemy.orm import Session

from cadenya_server.auth import scopes
from cadenya_server.auth.dependencies import Credentials, credentials
from cadenya_server.kit.runtime import AppRuntime
from cadenya_server.scim import service
from cadenya_server.scim.schemas import PREFIX

router = APIRouter(prefix=PREFIX, tags=["SCIM"])

ScimCredentials = Annotated[Credentials, Depends(credentials(scopes.SCIM_MANAGE))]


# Not in the OpenAPI document: SCIM describes itself at /scim/v2/ServiceProviderConfig,
# /Schemas and /ResourceTypes (RFC 7644 §4), and answers in its own media type and errors.
@router.api_route(
    "/{path:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    include_in_schema=False,
)
async def scim(
    path: str, request: Request, presented: ScimCredentials, runtime: AppRuntime
) -> Response:
    """Any SCIM request: the caller, the work and the answer's JSON in one transaction and
    one trip to the thread pool (a provider looks people up one by one; each trip more
    was a large share of a look-up, bench/README.md)."""
    scim_request = ScimRequest(
        method=request.method,
        base_url=str(request.base_url).rstrip("/") + PREFIX,
        path="/" + path,
        query=dict(parse_qsl(request.url.query, keep_blank_values=True)),
        headers=list(request.headers.items()),
        body=await request.body(),
    )

    def work(session: Session) -> tuple[int, dict[str, str], bytes]:
        caller = presented.caller(session=session, runtime=runtime)
        answer = service.handle(
            session=session, caller=caller, settings=runtime.settings, request=scim_request
        )
        body = b"" if answer.body is None else json.dumps(answer.body).encode()
        return int(answer.status), answer.headers, body

    # A read's statements each take their own snapshot under READ COMMITTED anyway: on
    # PostgreSQL they run outside a transaction, two round trips fewer.
    read = request.method in ("GET", "HEAD")
    status, headers, body = await runtime.db.run(work, write=not read, statements_alone=read)
    return Response(body, status_code=status, headers=headers)
