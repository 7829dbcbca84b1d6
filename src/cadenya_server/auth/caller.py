"""Who is calling: resolved once per request from the bearer token."""

from __future__ import annotations

from dataclasses import dataclass

from cadenya_server.auth import scopes

ROLE_ADMIN = "admin"
ROLE_MEMBER = "member"

# What a user profile with role `member` may do; an admin holds `*`.
MEMBER_SCOPES = frozenset({"workspaces:read"})


@dataclass(frozen=True)
class Caller:
    account_id: str
    profile_id: str
    scopes: frozenset[str]
    api_key_id: str = ""
    # The request this caller made, for the audit trail.
    request_id: str = ""

    @classmethod
    def for_user(cls, *, account_id: str, profile_id: str, role: str) -> Caller:
        granted = frozenset({scopes.ALL}) if role == ROLE_ADMIN else MEMBER_SCOPES
        return cls(account_id=account_id, profile_id=profile_id, scopes=granted)

    def can(self, scope: str) -> bool:
        return scopes.grants(self.scopes, scope)

    @property
    def is_admin(self) -> bool:
        return self.can(scopes.ACCOUNT_MANAGE)
