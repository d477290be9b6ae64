"""When the daemon runs: APScheduler 3.x triggers from ``schedule:`` and the command line.

Pure functions of their arguments (and an explicit ``now``), so the maths is tested with fixed
clocks through ``trigger.get_next_fire_time``.

Crontab text must name the days of the week (``mon``, ``mon-fri``, ``sat,sun``): crontab(5)
counts ``0`` as Sunday but APScheduler's ``from_crontab`` as Monday, so a number there would
silently run on the wrong day. Numbers are refused with that explanation.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from apg.config import RetryConfig, ScheduleConfig
from apg.errors import ConfigError

FIELDS = "minute hour day-of-month month day-of-week"


def zone(name: str, where: str = "schedule.timezone") -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"{where}: unknown time zone {name!r}; use an IANA name such as 'UTC' or "
            "'Europe/Berlin'"
        ) from None


def cron_trigger(text: str, tz: ZoneInfo, where: str = "schedule.cron") -> CronTrigger:
    """A trigger from five-field crontab text with day names, in time zone ``tz``."""
    fields = text.split()
    if len(fields) != 5:
        raise ConfigError(
            f"{where}: {text!r} has {len(fields)} fields; crontab text has 5 "
            f"({FIELDS}), e.g. '0 3 * * mon' for Mondays at 03:00"
        )
    if any(ch.isdigit() for ch in fields[4]):
        raise ConfigError(
            f"{where}: {text!r}: write the day of week with names (mon, tue, …, sun; "
            "ranges like mon-fri), not numbers: crontab counts 0 as Sunday but APScheduler "
            "as Monday"
        )
    try:
        return CronTrigger.from_crontab(text, timezone=tz)
    except ValueError as exc:
        raise ConfigError(
            f"{where}: {text!r} is not valid crontab text ({exc}); e.g. '0 3 * * mon'"
        ) from None


def interval_trigger(seconds: float, tz: ZoneInfo, now: datetime | None = None) -> IntervalTrigger:
    if seconds <= 0:
        raise ConfigError(f"--interval must be a positive number of seconds, got {seconds:g}")
    return IntervalTrigger(seconds=seconds, timezone=tz, start_date=now)


def build_trigger(
    schedule: ScheduleConfig,
    *,
    cron: str | None = None,
    interval: float | None = None,
    now: datetime | None = None,
) -> BaseTrigger:
    """``--interval`` wins over ``--cron``, which wins over ``schedule.cron``."""
    tz = zone(schedule.timezone)
    if interval is not None:
        return interval_trigger(interval, tz, now)
    if cron is not None:
        return cron_trigger(cron, tz, "--cron")
    return cron_trigger(schedule.cron, tz)


def describe(trigger: BaseTrigger, cron_text: str | None = None) -> str:
    """``cron '0 3 * * mon' (UTC)`` or ``every 1s``, for logs and ``apg status``."""
    if isinstance(trigger, IntervalTrigger):
        return f"every {trigger.interval.total_seconds():g}s"
    if isinstance(trigger, CronTrigger):
        text = cron_text if cron_text is not None else str(trigger)
        return f"cron '{text}' ({trigger.timezone})"
    return str(trigger)


def same_schedule(a: BaseTrigger, b: BaseTrigger) -> bool:
    """Whether two triggers fire at the same times (an interval's start date aside), so a
    stored job keeps its next fire time (and with it a fire missed while the daemon was down)."""
    return key(a) == key(b)


def key(trigger: BaseTrigger) -> str:
    if isinstance(trigger, IntervalTrigger):
        return f"interval[{trigger.interval.total_seconds():g}s]@{trigger.timezone}"
    if isinstance(trigger, CronTrigger):
        return f"{trigger}@{trigger.timezone}"
    return repr(trigger)


def retry_at(
    failed_at: datetime, retry: RetryConfig, attempt: int, next_regular: datetime | None
) -> datetime | None:
    """When to retry after attempt ``attempt`` (0: the regular run) failed, or None: out of
    attempts, or the retry would not come before the next regular run."""
    if attempt >= retry.attempts:
        return None
    when = failed_at + timedelta(seconds=retry.delay_seconds)
    if next_regular is not None and when >= next_regular:
        return None
    return when
