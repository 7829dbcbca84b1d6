"""The real API's scope grammar: `resource:verb`, `manage` implies `read`, `*` is everything."""

from __future__ import annotations

from cadenya_server.kit.errors import InvalidArgument

ALL = "*"
ACCOUNT_MANAGE = "account:manage"
WEBHOOKS_READ = "webhooks:read"
WEBHOOKS_MANAGE = "webhooks:manage"
SCIM_MANAGE = "scim:manage"
_READ_AND_MANAGE = (
    "agents",
    "objectives",
    "tools",
    "memory",
    "api_keys",
    "workspaces",
    "widgets",
    "widget_sessions",
    # Ours: webhook endpoints, messages and deliveries.
    "webhooks",
)
# scim: ours, the SCIM 2.0 API (/scim/v2) an identity provider provisions people with.
_MANAGE_ONLY = ("secrets", "account", "scim")
VALID = frozenset(
    [ALL]
    + [f"{r}:{v}" for r in _READ_AND_MANAGE for v in ("read", "manage")]
    + [f"{r}:manage" for r in _MANAGE_ONLY]
)


def normalize(permissions: list[str], *, field: str = "spec.permissions") -> list[str]:
    """The stored form: valid scopes only, sorted, `x:read` dropped where `x:manage` is held."""
    for scope in permissions:
        if scope not in VALID:
            raise InvalidArgument.field(
                field, f"{scope!r} is not a scope; use resource:read, resource:manage or *"
            )
    held = set(permissions)
    return sorted(
        s for s in held if not (s.endswith(":read") and s.replace(":read", ":manage") in held)
    )


def grants(held: frozenset[str], scope: str) -> bool:
    """Whether a set of scopes allows `scope`."""
    if ALL in held or scope in held:
        return True
    resource, _, verb = scope.partition(":")
    return verb == "read" and f"{resource}:manage" in held
