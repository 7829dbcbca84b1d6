"""Settings, read once from the environment (`CADENYA_SERVER_*`)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

DATA_DIR = Path("data")
DEFAULT_DATABASE_URL = f"sqlite:///{DATA_DIR}/cadenya.db"
MIN_SECRET_KEY_LENGTH = 32


class ConfigError(Exception):
    """A setting is missing or unusable; the message says which and why."""


@dataclass(frozen=True)
class Settings:
    database_url: str
    secret_key: str
    issuer: str
    audience: str
    max_body_bytes: int
    jwt_leeway_seconds: int


def _secret_key() -> str:
    key = os.environ.get("CADENYA_SERVER_SECRET_KEY", "")
    if not key:
        # Development convenience: keep a generated key beside the default database.
        path = DATA_DIR / "secret.key"
        if path.exists():
            key = path.read_text().strip()
        else:
            DATA_DIR.mkdir(parents=True, exist_ok=True)
            key = secrets.token_urlsafe(48)
            path.touch(mode=0o600)
            path.write_text(key + "\n")
            log.warning(
                "generated a secret key; set CADENYA_SERVER_SECRET_KEY in production",
                path=str(path),
            )
    if len(key) < MIN_SECRET_KEY_LENGTH:
        raise ConfigError(
            f"CADENYA_SERVER_SECRET_KEY must be at least {MIN_SECRET_KEY_LENGTH} characters"
        )
    return key


@cache
def get_settings() -> Settings:
    """The settings of this process."""
    return Settings(
        database_url=os.environ.get("CADENYA_SERVER_DATABASE_URL", DEFAULT_DATABASE_URL),
        secret_key=_secret_key(),
        issuer=os.environ.get("CADENYA_SERVER_ISSUER", "cadenya-server"),
        audience=os.environ.get("CADENYA_SERVER_AUDIENCE", "cadenya-api"),
        max_body_bytes=int(os.environ.get("CADENYA_SERVER_MAX_BODY_BYTES", str(1024 * 1024))),
        jwt_leeway_seconds=30,
    )
