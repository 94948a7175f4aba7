"""Settings read once from the environment and validated at start."""

from __future__ import annotations

from datetime import date, datetime
from functools import cached_property
from ipaddress import ip_network
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from coursedesk.errors import ConfigError

_POSTGRES_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")
# Rows the bot inserts show in every figure within this many seconds, so no cached
# answer may be kept longer (docs/reference.md §7).
FRESHNESS_BOUND_SECONDS = 10
# A replica further behind than this is not read from (REPLICA_MAX_LAG_SECONDS).
DEFAULT_MAX_REPLICA_LAG_SECONDS = 5.0


def _check_postgres_url(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if not value.startswith(_POSTGRES_SCHEMES):
        raise ValueError("must be a postgresql:// URL")
    _check_port(value, "PostgreSQL")
    # Parsed as the engine parses it, so that a URL it cannot read is refused at start.
    try:
        make_url(value.replace("postgres://", "postgresql://", 1))
    except (ValueError, ArgumentError) as exc:
        raise ValueError(f"not a usable PostgreSQL URL ({exc})") from None
    return value


def _check_port(url: str, kind: str) -> None:
    """Refuse a URL whose host or port does not parse, or whose port is 0."""
    try:
        port = urlsplit(url).port
    except ValueError as exc:
        raise ValueError(f"not a usable {kind} URL ({exc})") from None
    if port == 0:
        raise ValueError(f"not a usable {kind} URL (port 0)")


class Settings(BaseSettings):
    """Everything coursedesk reads from its environment (docs/reference.md §2)."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    database_url: str | None = None
    database_replica_url: str | None = None
    # Past this replica lag, reads that promise fresh figures go to the primary.
    replica_max_lag_seconds: float = Field(
        default=DEFAULT_MAX_REPLICA_LAG_SECONDS, gt=0, le=FRESHNESS_BOUND_SECONDS
    )
    coursedesk_home: Path = Path(".coursedesk")
    redis_url: str | None = None
    telegram_bot_token: str | None = None
    telegram_api_base_url: str = "https://api.telegram.org"
    telegram_webhook_secret: str | None = None
    broadcast_rate: float = Field(default=25.0, gt=0, le=10_000)
    # Uploaded files no broadcast or draft uses are deleted this many days after their
    # upload (broadcasts/media_pruning.py).
    media_retention_days: int = Field(default=7, ge=1, le=3650)
    secret_key: str | None = None
    # Where students reach this app: tracked links of broadcasts go out as
    # {public_base_url}/r/{token}; unset, no link is tracked (docs/reference.md §8).
    public_base_url: str | None = None
    app_timezone: str = "UTC"
    metrics_public: bool = False
    cache_ttl_seconds: float = Field(default=5.0, ge=0, le=FRESHNESS_BOUND_SECONDS)
    # How often this process folds the change log into the summaries when it is the
    # folding one (serve, worker and demo each offer to); 0: this process never folds.
    analytics_fold_seconds: float = Field(default=1.0, ge=0, le=5)

    # The proxies whose X-Forwarded-For and X-Forwarded-Proto are believed: addresses or
    # networks, comma-separated, or "*". None by default: behind no proxy, a client could
    # otherwise name any address it likes, and so dodge the per-address sign-in limit.
    forwarded_allow_ips: str = ""

    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_max_overflow: int = Field(default=10, ge=0, le=200)
    db_pool_timeout: float = Field(default=10.0, gt=0, le=300)
    db_connect_timeout: int = Field(default=5, ge=1, le=120)
    db_statement_timeout_ms: int = Field(default=30_000, ge=0, le=3_600_000)

    @field_validator("database_url", "database_replica_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        return _check_postgres_url(value)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis:// URL")
        _check_port(value, "Redis")
        return value

    @field_validator("telegram_api_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("public_base_url")
    @classmethod
    def _public_base_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        _check_port(value, "public")
        parts = urlsplit(value)
        if not parts.hostname:
            raise ValueError("must name a host, e.g. https://school.example")
        if parts.query or parts.fragment or "?" in value or "#" in value:
            raise ValueError("must have no query (?) or fragment (#)")
        if parts.username is not None or parts.password is not None:
            raise ValueError("must carry no user name or password")
        if any(char.isspace() for char in value):
            raise ValueError("must have no spaces")
        return value.rstrip("/")

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxy_addresses(cls, value: str) -> str:
        entries = [entry.strip() for entry in value.split(",") if entry.strip()]
        if entries == ["*"]:
            return "*"
        for entry in entries:
            try:
                ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address or network (give addresses or networks, "
                    "comma-separated, or *)"
                ) from None
        return ",".join(entries)

    @field_validator("app_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("secret_key", "telegram_bot_token", "telegram_webhook_secret")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value or None

    @field_validator("secret_key")
    @classmethod
    def _secret_key_strength(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @cached_property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.app_timezone)

    def today(self) -> date:
        """The calendar day it is now in APP_TIMEZONE."""
        return datetime.now(self.timezone).date()

    @property
    def home(self) -> Path:
        return self.coursedesk_home.expanduser().resolve()


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; a wrong value raises ConfigError naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        variable = str(first["loc"][0]).upper() if first["loc"] else "settings"
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{variable}: {message}") from None
