"""SSO connections, and signing people in through them.

A sign-in has three legs. `begin_sign_in` records a sign-in under way (the hash of its
`state`, its `nonce` and PKCE verifier) and says where to send the browser. The callback
first takes that record back (`take_sign_in`: once only), then redeems the code at the
IdP and checks the ID token outside any transaction (sso.oidc, auth.idp_tokens), and
finally `complete_sign_in` finds or links the profile, applies the role mapping, and
starts the session, in one transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from cadenya_server.audit import service as audit
from cadenya_server.auth import service as auth
from cadenya_server.auth.caller import ROLE_ADMIN, ROLE_MEMBER, Caller
from cadenya_server.kit import labels as label_rules
from cadenya_server.kit import update_mask
from cadenya_server.kit.clock import as_utc, now
from cadenya_server.kit.crypto import Keyring
from cadenya_server.kit.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
)
from cadenya_server.kit.ids import looks_like, new_id
from cadenya_server.kit.pagination import PageRequest, id_page, scope_of
from cadenya_server.kit.schemas import Pagination
from cadenya_server.models import SsoConnection as SsoConnectionRow
from cadenya_server.models import SsoLogin
from cadenya_server.profiles import service as profiles
from cadenya_server.sso import oidc, repository
from cadenya_server.sso.schemas import (
    UPDATABLE,
    CreateSsoConnectionRequest,
    SsoConnection,
    SsoConnectionList,
    UpdateSsoConnectionRequest,
    UpdateSsoConnectionSpec,
)

ID_PREFIX = "ssoconn"
USER = "user"
SIGN_IN_TTL = timedelta(minutes=10)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _conflict() -> AlreadyExists:
    return AlreadyExists(
        "one of these email domains, or this issuer and audience for tokens, already belongs "
        "to another SSO connection on this server"
    )


def _find(session: Session, caller: Caller, connection_id: str) -> SsoConnectionRow:
    row = repository.get(session, account_id=caller.account_id, connection_id=connection_id)
    if row is None:
        raise NotFound(f"SSO connection {connection_id!r} not found")
    return row


def _bearer_key(row: SsoConnectionRow) -> str | None:
    if not row.accept_bearer_tokens:
        return None
    if not row.audience:
        raise InvalidArgument.field("spec.audience", "is required with acceptBearerTokens")
    return f"{row.issuer} {row.audience}"


def _seal_secret(keyring: Keyring, row: SsoConnectionRow, secret: str) -> None:
    row.client_secret_ciphertext = keyring.encrypt(secret, context=f"sso-client-secret:{row.id}")
    row.client_secret_hint = secret[-4:] if len(secret) >= 12 else ""


def list_connections(
    *, session: Session, caller: Caller, page: PageRequest, callback_url: str
) -> SsoConnectionList:
    """One page of the account's SSO connections, oldest first."""
    rows, next_cursor = id_page(
        page,
        scope=scope_of("sso_connections.list", caller.account_id),
        fetch=lambda after, n: repository.page(
            session, account_id=caller.account_id, after=after, limit=n
        ),
    )
    return SsoConnectionList(
        items=[SsoConnection.of(row, callback_url=callback_url) for row in rows],
        pagination=Pagination(
            next_cursor=next_cursor, total=repository.count(session, account_id=caller.account_id)
        ),
    )


def get(
    *, session: Session, caller: Caller, connection_id: str, callback_url: str
) -> SsoConnection:
    return SsoConnection.of(_find(session, caller, connection_id), callback_url=callback_url)


def issuer_to_discover(*, body: CreateSsoConnectionRequest) -> str:
    """The issuer whose discovery document a create must read, once the rest of the body
    is known to be good (a refusal never waits on the network)."""
    label_rules.validate(body.metadata.labels)
    return oidc.check_issuer(body.spec.issuer)


def create(
    *,
    session: Session,
    caller: Caller,
    keyring: Keyring,
    body: CreateSsoConnectionRequest,
    provider: oidc.Provider,
    callback_url: str,
) -> SsoConnection:
    """A new connection to an OpenID Provider whose discovery document was read."""
    spec = body.spec
    row = SsoConnectionRow(
        id=new_id(ID_PREFIX),
        account_id=caller.account_id,
        name=body.metadata.name,
        external_id=body.metadata.external_id,
        labels=label_rules.validate(body.metadata.labels),
        creator_profile_id=caller.profile_id,
        issuer=oidc.check_issuer(spec.issuer),
        client_id=spec.client_id,
        authorization_endpoint=provider.authorization_endpoint,
        token_endpoint=provider.token_endpoint,
        jwks_uri=provider.jwks_uri,
        allowed_email_domains=sorted(set(spec.allowed_email_domains)),
        role_claim=spec.role_mapping.claim,
        admin_values=spec.role_mapping.admin_values,
        create_profiles=spec.create_profiles,
        accept_bearer_tokens=spec.accept_bearer_tokens,
        audience=spec.audience,
    )
    _seal_secret(keyring, row, spec.client_secret)
    row.bearer_key = _bearer_key(row)
    if not repository.save(session, row):
        raise _conflict()
    rendered = SsoConnection.of(row, callback_url=callback_url)
    audit.record(
        session,
        caller=caller,
        action="sso_connection.create",
        resource_id=row.id,
        details={"issuer": row.issuer},
        resource=rendered,
    )
    return rendered


def issuer_change(*, body: UpdateSsoConnectionRequest) -> str | None:
    """The new issuer an update names (its discovery document must be read first), or None."""
    paths = update_mask.paths(body.update_mask, body, allowed=UPDATABLE)
    if "metadata.labels" in paths and body.metadata is not None:
        label_rules.validate(body.metadata.labels)
    if "spec.issuer" not in paths:
        return None
    issuer = (body.spec or UpdateSsoConnectionSpec()).issuer
    if not issuer:
        raise InvalidArgument.field("spec.issuer", "must be the issuer's URL")
    return oidc.check_issuer(issuer)


def update(
    *,
    session: Session,
    caller: Caller,
    keyring: Keyring,
    connection_id: str,
    body: UpdateSsoConnectionRequest,
    provider: oidc.Provider | None,
    callback_url: str,
) -> SsoConnection:
    """Change what the update mask names; a new issuer comes with its discovered endpoints."""
    paths = update_mask.paths(body.update_mask, body, allowed=UPDATABLE)
    spec = body.spec or UpdateSsoConnectionSpec()
    row = _find(session, caller, connection_id)
    update_mask.apply_metadata(row, body.metadata, paths)

    def required(path: str, value: Any) -> Any:
        if value is None:
            raise InvalidArgument.field(path, "must be given when the update mask names it")
        return value

    if "spec.issuer" in paths and provider is not None:
        row.issuer = required("spec.issuer", spec.issuer)
        row.authorization_endpoint = provider.authorization_endpoint
        row.token_endpoint = provider.token_endpoint
        row.jwks_uri = provider.jwks_uri
    if "spec.clientId" in paths:
        row.client_id = required("spec.clientId", spec.client_id)
    if "spec.clientSecret" in paths:
        _seal_secret(keyring, row, required("spec.clientSecret", spec.client_secret))
    if "spec.allowedEmailDomains" in paths:
        domains = required("spec.allowedEmailDomains", spec.allowed_email_domains)
        row.allowed_email_domains = sorted(set(domains))
    mapping = spec.role_mapping
    if "spec.roleMapping.claim" in paths:
        row.role_claim = (mapping.claim if mapping else None) or ""
    if "spec.roleMapping.adminValues" in paths:
        row.admin_values = (mapping.admin_values if mapping else None) or []
    if "spec.createProfiles" in paths:
        row.create_profiles = bool(spec.create_profiles)
    if "spec.acceptBearerTokens" in paths:
        row.accept_bearer_tokens = bool(spec.accept_bearer_tokens)
    if "spec.audience" in paths:
        row.audience = spec.audience or ""
    row.bearer_key = _bearer_key(row)
    if not repository.save(session, row):
        raise _conflict()
    rendered = SsoConnection.of(row, callback_url=callback_url)
    if paths:
        audit.record(
            session,
            caller=caller,
            action="sso_connection.update",
            resource_id=row.id,
            details={"fields": sorted(paths)},
            resource=rendered,
        )
    return rendered


def delete(*, session: Session, caller: Caller, connection_id: str, callback_url: str) -> None:
    """Remove a connection: its people can no longer sign in through it, nor call with its
    tokens; their profiles and open sessions stay (delete the profiles to end those)."""
    row = _find(session, caller, connection_id)
    audit.record(
        session,
        caller=caller,
        action="sso_connection.delete",
        resource_id=row.id,
        details={"issuer": row.issuer},
        resource=SsoConnection.of(row, callback_url=callback_url),
    )
    repository.remove(session, row)


# --- Sign-in -----------------------------------------------------------------------------


def _email_domain(email: str) -> str:
    return email.rpartition("@")[2].strip().lower()


def begin_sign_in(
    *,
    session: Session,
    keyring: Keyring,
    email: str,
    connection_id: str,
    redirect_uri: str,
    return_to: str,
) -> oidc.AuthorizationRequest:
    """Record a sign-in under way for the connection an email's domain (or its id) names;
    the authorization request to send the browser to."""
    connection = None
    if connection_id:
        if looks_like(ID_PREFIX, connection_id):
            connection = repository.by_id(session, connection_id)
    elif email:
        connection = repository.by_domain(session, _email_domain(email))
    if connection is None:
        raise NotFound("no SSO connection signs in this email or connection")
    started = now()
    repository.purge_logins(session, before=started)
    request = oidc.authorization_request(
        authorization_endpoint=connection.authorization_endpoint,
        client_id=connection.client_id,
        redirect_uri=redirect_uri,
    )
    repository.add_login(
        session,
        SsoLogin(
            state_hash=keyring.token_hash(request.state),
            connection_id=connection.id,
            nonce=request.nonce,
            code_verifier=request.code_verifier,
            redirect_uri=redirect_uri,
            return_to=return_to,
            expires_at=started + SIGN_IN_TTL,
        ),
    )
    return request


@dataclass(frozen=True)
class PendingSignIn:
    """What the callback needs to redeem the code and check the ID token."""

    connection_id: str
    issuer: str
    client_id: str
    client_secret: str
    token_endpoint: str
    jwks_uri: str
    nonce: str
    code_verifier: str
    redirect_uri: str
    return_to: str


def take_sign_in(*, session: Session, keyring: Keyring, state: str) -> PendingSignIn:
    """The sign-in under way with this `state`, which no later callback can use again."""
    login = repository.take_login(session, keyring.token_hash(state)) if state else None
    if login is None or as_utc(login.expires_at) <= now():
        raise Unauthenticated("unknown, used or expired sign-in state: start again")
    connection = repository.by_id(session, login.connection_id)
    if connection is None:
        raise Unauthenticated("this SSO connection no longer exists")
    return PendingSignIn(
        connection_id=connection.id,
        issuer=connection.issuer,
        client_id=connection.client_id,
        client_secret=keyring.decrypt(
            connection.client_secret_ciphertext, context=f"sso-client-secret:{connection.id}"
        ),
        token_endpoint=connection.token_endpoint,
        jwks_uri=connection.jwks_uri,
        nonce=login.nonce,
        code_verifier=login.code_verifier,
        redirect_uri=login.redirect_uri,
        return_to=login.return_to,
    )


def mapped_role(connection: SsoConnectionRow, claims: dict[str, Any]) -> str | None:
    """The role the claims give (None: no mapping configured)."""
    if not connection.role_claim:
        return None
    held = claims.get(connection.role_claim)
    values = held if isinstance(held, list) else [held]
    admin = any(isinstance(v, str) and v in connection.admin_values for v in values)
    return ROLE_ADMIN if admin else ROLE_MEMBER


def _clean(text: Any, limit: int) -> str:
    return _CONTROL.sub("", text).strip()[:limit] if isinstance(text, str) else ""


def complete_sign_in(
    *,
    session: Session,
    keyring: Keyring,
    connection_id: str,
    claims: dict[str, Any],
    max_profiles: int,
    session_ttl_seconds: int,
    request_id: str,
) -> str:
    """Sign in the person a verified ID token names; the new session's token."""
    connection = repository.by_id(session, connection_id)
    if connection is None:
        raise Unauthenticated("this SSO connection no longer exists")
    account_id, subject = connection.account_id, claims["sub"]
    email = _clean(claims.get("email"), 320)
    if claims.get("email_verified") is not True:
        raise PermissionDenied("the identity provider has not verified this person's email")
    if "@" not in email or _email_domain(email) not in connection.allowed_email_domains:
        raise PermissionDenied("this email's domain is not one this connection allows")
    caller = Caller(account_id=account_id, profile_id="", scopes=frozenset(), request_id=request_id)
    role = mapped_role(connection, claims)
    profile_id = repository.identity_profile(session, connection_id=connection.id, subject=subject)
    if profile_id is None:
        profile = profiles.find_user_by_email(session=session, account_id=account_id, email=email)
        if profile is None:
            if not connection.create_profiles:
                raise PermissionDenied(
                    "this account has no profile for this email: ask an administrator to add it"
                )
            profile = profiles.add_at_sign_in(
                session=session,
                caller=caller,
                email=email,
                name=_clean(claims.get("name"), 200),
                role=role or ROLE_MEMBER,
                max_profiles=max_profiles,
            )
        elif profile.type != USER:
            # A system profile's email names a service, not a person who signs in.
            raise PermissionDenied("only a user profile signs in through an identity provider")
        elif repository.subject_of(session, connection_id=connection.id, profile_id=profile.id):
            # Another person at the IdP already signs in as this profile.
            raise PermissionDenied("this profile is linked to another identity of this provider")
        profile_id = profile.id
        repository.link(
            session,
            connection_id=connection.id,
            subject=subject,
            account_id=account_id,
            profile_id=profile_id,
        )
    # The one check every credential passes: deleted, moved, deactivated or not a person.
    auth.signed_in_profile(session, profile_id=profile_id, account_id=account_id)
    profile = profiles.find_row(session=session, account_id=account_id, profile_id=profile_id)
    if profile is None:
        raise Unauthenticated("this profile no longer exists")
    caller = Caller(
        account_id=account_id, profile_id=profile.id, scopes=frozenset(), request_id=request_id
    )
    if role is not None:
        profiles.set_role_at_sign_in(session=session, caller=caller, row=profile, role=role)
    audit.record(
        session,
        caller=caller,
        action="auth.sign_in",
        resource_id=profile.id,
        details={"connectionId": connection.id, "role": profile.role},
    )
    return auth.start_session(
        session,
        keyring=keyring,
        profile=profile,
        connection_id=connection.id,
        ttl_seconds=session_ttl_seconds,
    )
