"""/v1/account/trusted_endpoints: the hosts tool sets may send credentials to.

Administrators only (account:manage), reads included: the list says where the
account's secrets may travel.
"""

from __future__ import annotations

from fastapi import APIRouter

from cadenya_server.auth.dependencies import AdminCaller
from cadenya_server.kit.params import LabelFilter, Page, path_id
from cadenya_server.kit.runtime import AppRuntime, DbSession
from cadenya_server.kit.schemas import Empty
from cadenya_server.trusted_endpoints import service
from cadenya_server.trusted_endpoints.schemas import (
    CreateTrustedEndpointRequest,
    TrustedEndpoint,
    TrustedEndpointList,
    VerifyRequest,
    VerifyResponse,
)

router = APIRouter(prefix="/v1/account", tags=["Trusted endpoints"])

EndpointId = path_id("endpoint", alias="id")


@router.get("/trusted_endpoints", operation_id="trustedEndpoints.list")
def list_trusted_endpoints(
    caller: AdminCaller,
    session: DbSession,
    page: Page,
    labels: LabelFilter = None,
) -> TrustedEndpointList:
    """Lists the account's trusted endpoints, oldest first."""
    return service.list_endpoints(
        session=session,
        caller=caller,
        page=page,
        labels=labels,
    )


@router.post("/trusted_endpoints", operation_id="trustedEndpoints.create")
def create_trusted_endpoint(
    caller: AdminCaller, session: DbSession, runtime: AppRuntime, body: CreateTrustedEndpointRequest
) -> TrustedEndpoint:
    """Trusts a host: `host` or `host:port`, where host is a DNS name (Unicode or
    A-labels), an IPv4 address or a bracketed IPv6 address. Stored normalised;
    409 if the account already trusts the same host in any spelling; 400
    FAILED_PRECONDITION when it holds its limit of trusted endpoints."""
    return service.create(
        session=session,
        caller=caller,
        body=body,
        max_endpoints=runtime.settings.max_trusted_endpoints_per_account,
    )


@router.post("/trusted_endpoints:verify", operation_id="trustedEndpoints.verify")
def verify_trusted_endpoint(
    caller: AdminCaller, session: DbSession, body: VerifyRequest
) -> VerifyResponse:
    """Says whether an http(s) URL's host is trusted. An endpoint without a port trusts
    only the scheme's default port; one with a port, that port. A URL with a `{{…}}`
    template before its path is RESULT_TEMPLATED: its host is known only once resolved."""
    return service.verify(session=session, caller=caller, url=body.url)


@router.get("/trusted_endpoints/{id}", operation_id="trustedEndpoints.retrieve")
def get_trusted_endpoint(
    caller: AdminCaller, session: DbSession, endpoint_id: EndpointId
) -> TrustedEndpoint:
    """Gets a trusted endpoint."""
    return service.get(session=session, caller=caller, endpoint_id=endpoint_id)


@router.delete("/trusted_endpoints/{id}", operation_id="trustedEndpoints.delete")
def delete_trusted_endpoint(
    caller: AdminCaller, session: DbSession, endpoint_id: EndpointId
) -> Empty:
    """Stops trusting a host."""
    service.delete(session=session, caller=caller, endpoint_id=endpoint_id)
    return Empty()
