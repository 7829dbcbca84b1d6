"""Trusted endpoints on the wire."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from cadenya_server.kit.schemas import (
    AccountResourceMetadata,
    CreateAccountResourceMetadata,
    Pagination,
    RequestModel,
    WireModel,
)
from cadenya_server.models import TrustedEndpoint as TrustedEndpointRow
from cadenya_server.profiles.schemas import Profile, nobody
from cadenya_server.trusted_endpoints import hosts


class TrustedEndpointSpec(WireModel):
    host: str = Field(
        description="host[:port], normalised: lower-case, IDNA A-labels, no trailing dot"
    )


class TrustedEndpointInfo(WireModel):
    created_by: Profile = Field(
        description="The profile that created the endpoint; every field empty if it no "
        "longer exists."
    )


class TrustedEndpoint(WireModel):
    metadata: AccountResourceMetadata
    spec: TrustedEndpointSpec
    info: TrustedEndpointInfo

    @classmethod
    def of(cls, row: TrustedEndpointRow, *, created_by: Profile) -> TrustedEndpoint:
        return cls(
            metadata=AccountResourceMetadata.of(row),
            spec=TrustedEndpointSpec(host=row.host),
            info=TrustedEndpointInfo(created_by=created_by),
        )

    @classmethod
    def none(cls) -> TrustedEndpoint:
        """What :verify answers when no endpoint trusts the URL: every field zero."""
        return cls(
            metadata=AccountResourceMetadata.empty(),
            spec=TrustedEndpointSpec(host=""),
            info=TrustedEndpointInfo(created_by=nobody()),
        )


class TrustedEndpointList(WireModel):
    items: list[TrustedEndpoint]
    pagination: Pagination


class TrustedEndpointSpecInput(RequestModel):
    host: str = Field(
        max_length=300,
        description="host or host:port: a DNS name (Unicode names too), an IPv4 address or "
        "a bracketed IPv6 address; the pattern shows the ASCII names and IPv4 addresses.",
        json_schema_extra={"pattern": hosts.HOST_PATTERN},
    )


class CreateTrustedEndpointRequest(RequestModel):
    metadata: CreateAccountResourceMetadata
    spec: TrustedEndpointSpecInput


class VerifyRequest(RequestModel):
    url: str = Field(
        max_length=8192,
        description="An absolute http(s) URL; a URL with a {{…}} template before its path "
        "is accepted too (the pattern shows the plain ones).",
        json_schema_extra={"pattern": hosts.URL_PATTERN},
    )


class VerifyResult(StrEnum):
    TRUSTED = "RESULT_TRUSTED"
    UNTRUSTED = "RESULT_UNTRUSTED"
    TEMPLATED = "RESULT_TEMPLATED"


class VerifyResponse(WireModel):
    result: VerifyResult
    host: str = Field(
        description="The URL's host as an endpoint trusting it would be written (with the "
        "port when it is not the scheme's default); for a templated URL, as written."
    )
    trusted_endpoint: TrustedEndpoint = Field(
        description="The endpoint that trusts the URL; every field empty otherwise."
    )
