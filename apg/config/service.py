"""Settings of the long-running parts: the schedule, the review page, notifications."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from apg.config.base import Strict


class RetryConfig(Strict):
    attempts: int = Field(3, ge=0)
    delay_seconds: float = Field(600, ge=0)


class ScheduleConfig(Strict):
    cron: str = "0 3 * * mon"
    timezone: str = "UTC"
    misfire_grace_time: int = Field(6 * 3600, ge=1)
    always_run: bool = False
    retry: RetryConfig = Field(default_factory=RetryConfig)
    shutdown_grace: float = Field(60, ge=0)


# Notification events in precedence order: a message names the first one that applies
# (README "Notifications").
NOTIFY_EVENTS = ("failed", "degraded", "weak", "drift", "succeeded")
NotifyEvent = Literal["failed", "degraded", "weak", "drift", "succeeded"]


class NotifyTarget(Strict):
    """One webhook the daemon posts to after each run (apg.service.notify)."""

    url: str
    format: Literal["json", "slack"] = "json"
    events: list[NotifyEvent] = Field(default_factory=lambda: list(NOTIFY_EVENTS), min_length=1)
    headers: dict[str, str] = Field(default_factory=dict)
    # Bounds, so a slow or broken receiver never holds up the daemon: each attempt waits at
    # most `timeout` seconds, retries wait `backoff` seconds doubling, all within max_seconds.
    timeout: float = Field(10.0, gt=0, le=120)
    attempts: int = Field(3, ge=1, le=10)
    backoff: float = Field(1.0, ge=0, le=60)
    max_seconds: float = Field(30.0, gt=0, le=300)

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        from urllib.parse import urlsplit

        # The URL is not echoed: after ${ENV} expansion it may carry a token.
        parts = urlsplit(v.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                "must be an http:// or https:// URL with a host, "
                "e.g. https://hooks.slack.com/services/${SLACK_HOOK}"
            )
        return v.strip()

    @field_validator("events")
    @classmethod
    def _unique_events(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(v))


class ServeConfig(Strict):
    # Where people reach `apg serve` (e.g. https://apg.example.com): notifications link to
    # its review pages when set.
    public_url: str | None = None

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://, e.g. https://apg.example.com")
        return v.rstrip("/")
