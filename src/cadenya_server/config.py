"""Settings, read once from the environment (`CADENYA_SERVER_*`), typed by pydantic-settings."""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import structlog
from limits import parse_many
from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

log = structlog.get_logger(__name__)

ENV_PREFIX = "CADENYA_SERVER_"
DATA_DIR = Path("data")
DEFAULT_DATABASE_URL = f"sqlite:///{DATA_DIR}/cadenya.db"
MIN_SECRET_KEY_LENGTH = 32
# Never echoed back in an error message (a URL may hold a password).
_SECRET_FIELDS = frozenset({"secret_key", "database_url", "redis_url"})


class ConfigError(Exception):
    """A setting is missing or unusable; the message names the variable and says why."""


# Standard Webhooks' schedule: the first attempt at once, then these delays.
DEFAULT_RETRY_SCHEDULE = "5,300,1800,7200,18000,36000,36000"


def _parts(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@dataclass(frozen=True)
class WebhookSettings:
    """What the delivery worker reads."""

    # Attempts in flight per worker.
    concurrency: int = 64
    retry_schedule: tuple[float, ...] = tuple(float(p) for p in DEFAULT_RETRY_SCHEDULE.split(","))
    timeout_seconds: float = 15.0
    disable_after_seconds: float = 5 * 24 * 3600
    rotation_grace_seconds: int = 86400
    # Networks the worker may reach although they are not public (e.g. 127.0.0.0/8).
    allowed_networks: tuple[str, ...] = ()
    run_worker: bool = True
    # How often an idle worker looks for due deliveries it was not woken for.
    poll_seconds: float = 1.0


class Settings(BaseSettings):
    """Every setting; the variable is `CADENYA_SERVER_` + the field's name in capitals."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    # Empty: `get_settings` generates a development key into data/secret.key.
    secret_key: str = Field("", repr=False)
    # A file holding the key (a mounted secret); its surrounding whitespace is ignored.
    secret_key_file: Path | None = None
    issuer: str = "cadenya-server"
    audience: str = "cadenya-api"
    max_body_bytes: int = Field(1024 * 1024, gt=0)
    jwt_leeway_seconds: int = Field(30, ge=0, le=300)
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    # auto: console lines on a terminal, JSON lines otherwise.
    log_format: Literal["auto", "json", "console"] = "auto"
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
    max_workspaces_per_account: int = Field(500, gt=0)
    max_api_keys_per_account: int = Field(1000, gt=0)
    max_workspaces_per_api_key: int = Field(500, gt=0)
    max_trusted_endpoints_per_account: int = Field(1000, gt=0)
    max_profiles_per_account: int = Field(1_000_000, gt=0)
    max_webhook_endpoints_per_account: int = Field(100, gt=0)
    # A page of a listing stops before the item that would take it past this many bytes.
    max_page_bytes: int = Field(4 * 1024 * 1024, gt=0)
    # The server's address as browsers reach it (https://cadenya.example.com): the SSO
    # callback URL and the Origin that cookie-authenticated changes must come from.
    # "" takes them from each request.
    public_url: str = ""
    # How long a browser session lasts after sign-in.
    session_ttl_seconds: int = Field(8 * 3600, ge=60, le=30 * 24 * 3600)
    # Webhooks (read as one WebhookSettings: `settings.webhooks`).
    webhook_concurrency: int = Field(64, gt=0)
    webhook_retry_schedule: str = DEFAULT_RETRY_SCHEDULE
    webhook_timeout_seconds: float = Field(15.0, ge=0.1)
    webhook_disable_after_seconds: float = Field(5 * 24 * 3600, ge=0)
    webhook_rotation_grace_seconds: int = Field(86400, ge=0)
    webhook_allowed_networks: str = ""
    # Off (`serve --no-worker`): this server sends no webhooks; `cadenya-server worker` does.
    webhook_worker: bool = True
    webhook_poll_seconds: float = Field(1.0, ge=0.05)

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        try:
            delays = [float(part) for part in value.split(",")]
        except ValueError:
            raise ValueError("must be comma-separated seconds, e.g. 5,300,1800") from None
        if any(delay < 0 for delay in delays):
            raise ValueError("must not hold negative delays")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if value and not (value.startswith(("https://", "http://")) and "?" not in value):
            raise ValueError("must be the server's base URL, e.g. https://cadenya.example.com")
        return value

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        for network in _parts(value):
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"{network!r} is not a network such as 127.0.0.0/8") from None
        return value

    @property
    def webhooks(self) -> WebhookSettings:
        return WebhookSettings(
            concurrency=self.webhook_concurrency,
            retry_schedule=tuple(float(p) for p in self.webhook_retry_schedule.split(",")),
            timeout_seconds=self.webhook_timeout_seconds,
            disable_after_seconds=self.webhook_disable_after_seconds,
            rotation_grace_seconds=self.webhook_rotation_grace_seconds,
            allowed_networks=tuple(_parts(self.webhook_allowed_networks)),
            run_worker=self.webhook_worker,
            poll_seconds=self.webhook_poll_seconds,
        )

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        try:
            backend = make_url(value).get_backend_name()
        except ArgumentError:
            backend = ""
        if backend not in ("sqlite", "postgresql", "postgres"):
            raise ValueError("must be sqlite:///path/to.db or postgresql://user@host:5432/db")
        return value

    @field_validator("rate_limit_failed_auth", "rate_limit_per_credential")
    @classmethod
    def _rates(cls, value: str) -> str:
        value = value.strip()
        if value:
            try:
                parse_many(value)
            except ValueError:
                raise ValueError(
                    "must be rates such as '100/minute' or '10/second;500/hour'"
                ) from None
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_case(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_case(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="before")
    @classmethod
    def _secret_key_from_file(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not data.get("secret_key_file"):
            return data
        if data.get("secret_key"):
            raise ValueError(f"set {ENV_PREFIX}SECRET_KEY or {ENV_PREFIX}SECRET_KEY_FILE, not both")
        path = Path(data["secret_key_file"])
        try:
            key = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ValueError(f"{ENV_PREFIX}SECRET_KEY_FILE: cannot read {path}: {reason}") from None
        if not key:
            raise ValueError(f"{ENV_PREFIX}SECRET_KEY_FILE: {path} is empty")
        return {**data, "secret_key": key}

    @model_validator(mode="after")
    def _secret_key_long_enough(self) -> Settings:
        if self.secret_key and len(self.secret_key) < MIN_SECRET_KEY_LENGTH:
            source = (
                f"{ENV_PREFIX}SECRET_KEY_FILE: the key in {self.secret_key_file}"
                if self.secret_key_file
                else f"{ENV_PREFIX}SECRET_KEY"
            )
            raise ValueError(f"{source} must be at least {MIN_SECRET_KEY_LENGTH} characters")
        return self


def _describe(exc: ValidationError) -> str:
    """One line per bad setting, naming its variable: what an operator needs, no traceback."""
    lines = []
    for error in exc.errors(include_url=False):
        message = error["msg"].removeprefix("Value error, ")
        if not error["loc"]:
            lines.append(message)
            continue
        field = str(error["loc"][0])
        variable = ENV_PREFIX + field.upper()
        if field in _SECRET_FIELDS:
            lines.append(f"{variable}: {message}")
        else:
            lines.append(f"{variable}={error['input']!r}: {message}")
    return "\n".join(lines)


def load_settings() -> Settings:
    """The environment's settings, or ConfigError saying what is wrong."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _development_secret_key() -> str:
    """A key kept beside the default database: `make run` works with nothing configured."""
    path = DATA_DIR / "secret.key"
    if path.exists():
        return path.read_text().strip()
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.touch(mode=0o600)
    path.write_text(key + "\n")
    log.warning(f"generated a secret key; set {ENV_PREFIX}SECRET_KEY in production", path=str(path))
    return key


@cache
def get_settings() -> Settings:
    """The settings of this process."""
    settings = load_settings()
    if not settings.secret_key:
        settings = settings.model_copy(update={"secret_key": _development_secret_key()})
    return settings
