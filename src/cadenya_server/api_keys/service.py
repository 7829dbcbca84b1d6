"""API keys: each one a token and a profile of type API key."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from cadenya_server.auth import api_key_tokens, scopes
from cadenya_server.kit.crypto import Keyring
from cadenya_server.kit.ids import new_id
from cadenya_server.models import ApiKey
from cadenya_server.profiles import repository as profiles


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    token: str


def issue(
    *,
    session: Session,
    keyring: Keyring,
    account_id: str,
    name: str,
    permissions: list[str],
    creator_profile_id: str,
    description: str = "",
    all_workspaces: bool = False,
    is_default: bool = False,
) -> IssuedKey:
    """A new key, its profile, and the one time its token is known in clear."""
    profile = profiles.add(
        session,
        account_id=account_id,
        type="api_key",
        name=name,
        email="",
        creator_profile_id=creator_profile_id,
    )
    key = ApiKey(
        id=new_id("apikey"),
        account_id=account_id,
        profile_id=profile.id,
        name=name,
        description=description,
        permissions=scopes.normalize(permissions),
        all_workspaces=all_workspaces,
        is_default=is_default,
        creator_profile_id=creator_profile_id,
    )
    token = set_token(key, keyring=keyring)
    session.add(key)
    session.flush()
    return IssuedKey(key=key, token=token)


def set_token(key: ApiKey, *, keyring: Keyring) -> str:
    """Give the key a fresh token; the old one stops working when this commits."""
    token = api_key_tokens.generate()
    key.token_hash = keyring.token_hash(token)
    key.token_ciphertext = keyring.encrypt(token, context=key.id)
    key.token_hint = token[-4:]
    return token
