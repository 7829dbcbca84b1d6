"""SSO connections, and the browser session, on the wire."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, ConfigDict, Field, StringConstraints

from cadenya_server.kit import update_mask
from cadenya_server.kit.clock import rfc3339
from cadenya_server.kit.schemas import (
    HOST_AND_PORT_PATTERN,
    AccountResourceMetadata,
    CreateAccountResourceMetadata,
    Pagination,
    RequestModel,
    RequiredShortText,
    UpdateAccountResourceMetadata,
    WireModel,
)
from cadenya_server.models import SsoConnection as SsoConnectionRow
from cadenya_server.profiles.schemas import UserProfile

# Shown in place of a stored client secret: never the secret, only that one is set.
MASK = "********"
DOMAIN_PATTERN = (
    r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$"
)


def _domain(value: str) -> str:
    value = value.strip().lower()
    if not re.fullmatch(DOMAIN_PATTERN, value):
        raise ValueError(f"{value!r} is not a DNS domain such as acme.io")
    return value


Domain = Annotated[
    str, AfterValidator(_domain), Field(json_schema_extra={"pattern": DOMAIN_PATTERN})
]
Printable = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]*$")]
# Printable ASCII without spaces, at least one character: client ids and secrets.
Credential = Annotated[
    str, StringConstraints(min_length=1, max_length=500, pattern=r"^[\x21-\x7e]+$")
]


class RoleMapping(WireModel):
    claim: str = Field(
        "",
        description="The ID token claim to read (e.g. `groups`); empty: no mapping, people "
        "keep the role an administrator gave them and new ones are members.",
    )
    admin_values: list[str] = Field(
        [],
        description="A person whose claim holds (or equals) one of these values is an admin; "
        "everyone else a member. Applied at every sign-in.",
    )


class RoleMappingInput(RequestModel):
    claim: Annotated[Printable, StringConstraints(max_length=200)] = ""
    admin_values: Annotated[
        list[RequiredShortText],
        Field(max_length=50),
    ] = []


class SsoConnectionSpec(WireModel):
    issuer: str
    client_id: str
    client_secret: str = Field(description=f"Write-only: `{MASK}` plus its last four when set.")
    allowed_email_domains: list[str]
    role_mapping: RoleMapping
    create_profiles: bool
    accept_bearer_tokens: bool
    audience: str


class SsoConnectionInfo(WireModel):
    callback_url: str = Field(
        description="The redirect URI to register at the identity provider for this server."
    )
    updated_at: str


class SsoConnection(WireModel):
    metadata: AccountResourceMetadata
    spec: SsoConnectionSpec
    info: SsoConnectionInfo

    @classmethod
    def of(cls, row: SsoConnectionRow, *, callback_url: str) -> SsoConnection:
        return cls(
            metadata=AccountResourceMetadata.of(row),
            spec=SsoConnectionSpec(
                issuer=row.issuer,
                client_id=row.client_id,
                client_secret=f"{MASK}{row.client_secret_hint}" if row.client_secret_hint else "",
                allowed_email_domains=row.allowed_email_domains,
                role_mapping=RoleMapping(claim=row.role_claim, admin_values=row.admin_values),
                create_profiles=row.create_profiles,
                accept_bearer_tokens=row.accept_bearer_tokens,
                audience=row.audience,
            ),
            info=SsoConnectionInfo(callback_url=callback_url, updated_at=rfc3339(row.updated_at)),
        )


class SsoConnectionList(WireModel):
    items: list[SsoConnection]
    pagination: Pagination


# https, or http to a provider on this machine (loopback); sso.oidc.check_issuer says why.
ISSUER_PATTERN = (
    rf"^(https://{HOST_AND_PORT_PATTERN}"
    r"|http://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]{1,5})?)"
    r"(/[\x21-\x22\x24-\x3e\x40-\x7e]*)?$"
)
Url = Annotated[
    str,
    StringConstraints(min_length=1, max_length=2000, pattern=ISSUER_PATTERN),
]
ShortPrintable = Annotated[Printable, StringConstraints(max_length=500)]


class SsoConnectionSpecInput(RequestModel):
    issuer: Url = Field(description="The OpenID Provider's issuer URL (https)")
    client_id: Credential
    client_secret: Credential = Field(description="Stored encrypted; never returned.")
    allowed_email_domains: Annotated[list[Domain], Field(max_length=100)] = Field(
        description="Whose sign-in this connection starts and accepts (none: no one signs "
        "in); each domain belongs to one connection on this server."
    )
    role_mapping: RoleMappingInput = RoleMappingInput()
    create_profiles: bool = False
    accept_bearer_tokens: bool = False
    audience: ShortPrintable = Field(
        "", description="The `aud` an access token must carry; required with acceptBearerTokens"
    )


class CreateSsoConnectionRequest(RequestModel):
    metadata: CreateAccountResourceMetadata
    spec: SsoConnectionSpecInput


UPDATABLE = frozenset(
    {
        "metadata.name",
        "metadata.externalId",
        "metadata.labels",
        "spec.issuer",
        "spec.clientId",
        "spec.clientSecret",
        "spec.allowedEmailDomains",
        "spec.roleMapping.claim",
        "spec.roleMapping.adminValues",
        "spec.createProfiles",
        "spec.acceptBearerTokens",
        "spec.audience",
    }
)


class UpdateRoleMapping(RequestModel):
    claim: Annotated[Printable, StringConstraints(max_length=200)] | None = None
    admin_values: (
        Annotated[
            list[RequiredShortText],
            Field(max_length=50),
        ]
        | None
    ) = None


ConnectionMask = update_mask.mask_of(UPDATABLE)


class UpdateSsoConnectionSpec(RequestModel):
    issuer: Url | None = None
    client_id: Credential | None = None
    client_secret: Credential | None = None
    allowed_email_domains: Annotated[list[Domain], Field(max_length=100)] | None = None
    role_mapping: UpdateRoleMapping | None = None
    create_profiles: bool | None = None
    accept_bearer_tokens: bool | None = None
    audience: ShortPrintable | None = None


class UpdateSsoConnectionRequest(RequestModel):
    # These cannot be cleared: a mask that names one comes with its value.
    model_config = ConfigDict(
        json_schema_extra=update_mask.named_means_given(
            "spec.issuer", "spec.clientId", "spec.clientSecret", "spec.allowedEmailDomains"
        )
    )

    metadata: UpdateAccountResourceMetadata | None = None
    spec: UpdateSsoConnectionSpec | None = None
    update_mask: ConnectionMask = ""


class BrowserSessionInfo(WireModel):
    profile: UserProfile = Field(
        description="The person signed in, or the API key's profile for a session started "
        "with one (POST /auth/api_key)"
    )
    permissions: list[str] = Field(
        description="What the session may do: `*` for an administrator, `workspaces:read` "
        "for a member, the key's scopes for an API key's session"
    )
    csrf_token: str = Field(
        description="Echo it in the X-CSRF-Token header of every change made with the cookie."
    )
    expires_at: str


class ApiKeySignInRequest(RequestModel):
    api_key: str = Field(
        min_length=1,
        max_length=200,
        description="An API key (cdy_…), exchanged for a session: it is not kept, only its "
        "hash, and the session ends when the key is disabled, rotated or deleted",
    )
