"""Trusted endpoints: the hosts the account's tool sets may send credentials to."""

from __future__ import annotations

from sqlalchemy.orm import Session

from cadenya_server.audit import service as audit
from cadenya_server.auth.caller import Caller
from cadenya_server.kit import labels as label_rules
from cadenya_server.kit import quotas
from cadenya_server.kit.errors import AlreadyExists, InvalidArgument, NotFound
from cadenya_server.kit.ids import new_id
from cadenya_server.kit.labels import parse_filter
from cadenya_server.kit.pagination import PageRequest, id_page, scope_of
from cadenya_server.kit.schemas import Pagination
from cadenya_server.models import TrustedEndpoint as TrustedEndpointRow
from cadenya_server.profiles import service as profiles
from cadenya_server.profiles.schemas import nobody
from cadenya_server.trusted_endpoints import hosts, repository
from cadenya_server.trusted_endpoints.schemas import (
    CreateTrustedEndpointRequest,
    TrustedEndpoint,
    TrustedEndpointList,
    VerifyResponse,
    VerifyResult,
)

ENDPOINTS = quotas.Quota(
    "trusted endpoints",
    "CADENYA_SERVER_MAX_TRUSTED_ENDPOINTS_PER_ACCOUNT",
    "delete one to make room",
)


def _render(
    session: Session, caller: Caller, rows: list[TrustedEndpointRow]
) -> list[TrustedEndpoint]:
    creators = profiles.creators(
        session=session,
        account_id=caller.account_id,
        profile_ids={r.creator_profile_id for r in rows},
    )
    return [
        TrustedEndpoint.of(row, created_by=creators.get(row.creator_profile_id) or nobody())
        for row in rows
    ]


def _find(session: Session, caller: Caller, endpoint_id: str) -> TrustedEndpointRow:
    row = repository.get(session, account_id=caller.account_id, endpoint_id=endpoint_id)
    if row is None:
        raise NotFound(f"trusted endpoint {endpoint_id!r} not found")
    return row


def list_endpoints(
    *,
    session: Session,
    caller: Caller,
    page: PageRequest,
    labels: str | None,
) -> TrustedEndpointList:
    """One page of the account's trusted endpoints, oldest first."""
    where = repository.EndpointFilter(account_id=caller.account_id, labels=parse_filter(labels))
    scope = scope_of("trusted_endpoints.list", where.account_id, sorted(where.labels.items()))
    rows, next_cursor = id_page(
        page,
        scope=scope,
        fetch=lambda after, n: repository.page(session, where, after=after, limit=n),
    )
    return TrustedEndpointList(
        items=_render(session, caller, rows),
        pagination=Pagination(next_cursor=next_cursor, total=repository.count(session, where)),
    )


def get(*, session: Session, caller: Caller, endpoint_id: str) -> TrustedEndpoint:
    """A trusted endpoint of the caller's account."""
    (rendered,) = _render(session, caller, [_find(session, caller, endpoint_id)])
    return rendered


def create(
    *, session: Session, caller: Caller, body: CreateTrustedEndpointRequest, max_endpoints: int
) -> TrustedEndpoint:
    """Trust a host; 409 if the account already trusts it (in any spelling), 400 when it
    trusts `max_endpoints` hosts already."""
    try:
        host = hosts.normalize(body.spec.host)
    except hosts.HostError as exc:
        raise InvalidArgument.field("spec.host", str(exc)) from exc
    ENDPOINTS.require_room(
        session,
        account_id=caller.account_id,
        limit=max_endpoints,
        count=lambda: repository.count(
            session, repository.EndpointFilter(account_id=caller.account_id)
        ),
    )
    row = TrustedEndpointRow(
        id=new_id("endpoint"),
        account_id=caller.account_id,
        host=host,
        name=body.metadata.name,
        external_id=body.metadata.external_id,
        labels=label_rules.validate(body.metadata.labels),
        creator_profile_id=caller.profile_id,
    )
    if not repository.add(session, row):
        raise AlreadyExists(f"the account already trusts {host!r}")
    audit.record(
        session,
        caller=caller,
        action="trusted_endpoint.create",
        resource_id=row.id,
        details={"host": host},
    )
    (rendered,) = _render(session, caller, [row])
    return rendered


def delete(*, session: Session, caller: Caller, endpoint_id: str) -> None:
    """Stop trusting a host."""
    row = _find(session, caller, endpoint_id)
    audit.record(
        session,
        caller=caller,
        action="trusted_endpoint.delete",
        resource_id=row.id,
        details={"host": row.host},
    )
    repository.remove(session, row)


def verify(*, session: Session, caller: Caller, url: str) -> VerifyResponse:
    """Whether the account trusts the host `url` points at."""
    try:
        target = hosts.parse_url(url)
    except hosts.HostError as exc:
        raise InvalidArgument.field("url", str(exc)) from exc
    if isinstance(target, hosts.TemplatedHost):
        return VerifyResponse(
            result=VerifyResult.TEMPLATED, host=target.text, trusted_endpoint=TrustedEndpoint.none()
        )
    candidates = target.endpoints()
    found = repository.with_hosts(session, account_id=caller.account_id, hosts=candidates)
    match = next((found[h] for h in candidates if h in found), None)
    if match is None:
        return VerifyResponse(
            result=VerifyResult.UNTRUSTED,
            host=target.canonical(),
            trusted_endpoint=TrustedEndpoint.none(),
        )
    (rendered,) = _render(session, caller, [match])
    return VerifyResponse(
        result=VerifyResult.TRUSTED, host=target.canonical(), trusted_endpoint=rendered
    )
