"""Settings, read once from the environment (`CADENYA_SERVER_*`)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import structlog
from limits import parse_many

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
    # Rate limits, in the `limits` library's notation ("100/minute", "10/second;500/hour");
    # "" turns one off. See the README's Limits section for why each default.
    rate_limit_failed_auth: str = "100/minute"
    rate_limit_per_credential: str = "6000/minute"
    # Shared rate-limit counters for every process and server; "" keeps them in memory.
    redis_url: str = ""
    redis_key_prefix: str = "cadenya-server"
    # Proxies whose X-Forwarded-For names the client ("" trusts none: the socket peer).
    forwarded_allow_ips: str = ""
    # Per-account quotas on what can grow.
    max_workspaces_per_account: int = 500
    max_api_keys_per_account: int = 1000
    max_workspaces_per_api_key: int = 500
    max_trusted_endpoints_per_account: int = 1000
    max_profiles_per_account: int = 1_000_000
    # A page of a listing stops before the item that would take it past this many bytes.
    max_page_bytes: int = 4 * 1024 * 1024


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
        rate_limit_failed_auth=_rate("RATE_LIMIT_FAILED_AUTH"),
        rate_limit_per_credential=_rate("RATE_LIMIT_PER_CREDENTIAL"),
        redis_url=os.environ.get("CADENYA_SERVER_REDIS_URL", ""),
        redis_key_prefix=os.environ.get(
            "CADENYA_SERVER_REDIS_KEY_PREFIX", Settings.redis_key_prefix
        ),
        forwarded_allow_ips=os.environ.get("CADENYA_SERVER_FORWARDED_ALLOW_IPS", ""),
        max_workspaces_per_account=_positive("MAX_WORKSPACES_PER_ACCOUNT"),
        max_api_keys_per_account=_positive("MAX_API_KEYS_PER_ACCOUNT"),
        max_workspaces_per_api_key=_positive("MAX_WORKSPACES_PER_API_KEY"),
        max_trusted_endpoints_per_account=_positive("MAX_TRUSTED_ENDPOINTS_PER_ACCOUNT"),
        max_profiles_per_account=_positive("MAX_PROFILES_PER_ACCOUNT"),
        max_page_bytes=_positive("MAX_PAGE_BYTES"),
    )


def _rate(name: str) -> str:
    """`CADENYA_SERVER_<name>` in the `limits` notation, or the Settings default."""
    variable = f"CADENYA_SERVER_{name}"
    text = os.environ.get(variable, getattr(Settings, name.lower())).strip()
    if text:
        try:
            parse_many(text)
        except ValueError as exc:
            raise ConfigError(
                f"{variable} must be rates such as '100/minute' or '10/second;500/hour', "
                f"not {text!r}"
            ) from exc
    return text


def _positive(name: str) -> int:
    """`CADENYA_SERVER_<name>`, a positive integer, or the Settings default."""
    variable = f"CADENYA_SERVER_{name}"
    default: int = getattr(Settings, name.lower())
    text = os.environ.get(variable, "")
    if not text:
        return default
    if not text.isdigit() or int(text) < 1:
        raise ConfigError(f"{variable} must be a positive integer, not {text!r}")
    return int(text)
