"""The scheduled job of ``apg daemon`` (:mod:`apg.daemon`), and the scheduler it runs in.

Jobs are stored in the apg database as the text reference ``apg.scheduler:scheduled_run``
with plain-string kwargs: the config *path* (never the config: it is re-read at every run, and
secrets come from ``${ENV}`` then), the database URL when it has no password, the trigger
(``schedule``, ``run-now``, ``retry``) and the retry attempt. Nothing the job meets stops the
daemon: it returns the run's status, having logged and recorded what happened.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from apscheduler.schedulers.blocking import BlockingScheduler

from apg import runlog
from apg.config import Config, load_config
from apg.errors import ApgError
from apg.store import Store, locks, now, open_store, runstate
from apg.store.runner import RunInterrupted, Ticket, execute_run

if TYPE_CHECKING:
    from apg.daemon import Daemon

JOB_FUNC = "apg.scheduler:scheduled_run"
JOBS_TABLE = "apg_scheduler_jobs"
SCHEDULE_JOB, RETRY_JOB, NOW_JOB = "apg-schedule", "apg-retry", "apg-run-now"
log = logging.getLogger("apg.daemon")

_active: Daemon | None = None  # the daemon running in this process, if any


class Scheduler(BlockingScheduler):
    def _process_jobs(self) -> float | None:
        # A database hiccup while updating a job must not end the loop (and the daemon).
        try:
            return super()._process_jobs()  # type: ignore[no-any-return]
        except Exception as exc:
            log.error("scheduler: %s; retrying in %ss", exc, self.jobstore_retry_interval)
            return float(self.jobstore_retry_interval)


def job_db_url(url: str) -> str | None:
    """The database URL as a job kwarg: pickled into the job store, so never with a password
    (None then: the job uses its daemon's database)."""
    return url if sa.make_url(url).password is None else None


def secrets_of(config: Config) -> list[str]:
    return [v for spec in config.sources for v in spec.secret_values()]


def scheduled_run(
    config_path: str, db_url: str | None = None, trigger: str = "schedule", attempt: int = 0
) -> str:
    """The job: one run from the config file; returns the run's status (never raises).

    Called by the daemon's scheduler, or directly (tests, one-off use): then ``db_url`` or
    the config's ``storage.url`` names the database and failures are not retried.
    """
    daemon = _active
    if daemon is not None:
        daemon.busy = True  # before the check: the shutdown sets `stopping`, then waits
        if daemon.stopping:
            daemon.busy = False
            log.info("skipped a %s run: the daemon is stopping", trigger)
            return "skipped"
    label = trigger + (f" {attempt}" if attempt else "")
    store: Store | None = daemon.store if daemon is not None else None
    config: Config | None = None
    ticket: Ticket | None = None

    def on_start(started: Ticket) -> None:
        nonlocal ticket
        ticket = started
        runlog.current_run.set(started.run_id)
        if daemon is not None:
            daemon.ticket = started
        log.info("run started (%s)", label, extra={"event": "run-started"})

    def progress(message: str) -> None:
        log.info(message, extra={"run_id": ticket.run_id if ticket else None})

    try:
        config = load_config(Path(config_path))
        runlog.register_secrets(secrets_of(config))
        if daemon is not None:
            daemon.config = config
        else:
            store = open_store(db_url, config.storage.url)
        assert store is not None
        outcome = execute_run(
            config,
            store,
            progress=progress,
            trigger=trigger,
            attempt=attempt,
            wait=True,
            on_wait=lambda exc: log.info("waiting: %s", exc.holder.describe()),
            skip_unchanged=not config.schedule.always_run,
            cancel=daemon.cancel if daemon is not None else None,
            heartbeat=daemon.options.heartbeat if daemon is not None else locks.HEARTBEAT_EVERY,
            on_start=on_start,
        )
        extra = f"; {outcome.reason}" if outcome.reason else ""
        level = logging.WARNING if outcome.status == "degraded" else logging.INFO
        log.log(level, "run %s%s", outcome.status, extra, extra={"event": "run-finished"})
        if daemon is not None:
            daemon.drop_retry()
        return outcome.status
    except RunInterrupted as exc:
        log.warning("run interrupted: %s", exc.reason, extra={"event": "run-finished"})
        return "interrupted"
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, ApgError):
            log.error("run failed: %s", reason, extra={"event": "run-finished"})
        else:
            log.exception("run failed: %s", reason, extra={"event": "run-finished"})
        if ticket is None and config is None:
            _record_early_failure(store, db_url, trigger, attempt, reason)
        if daemon is not None:
            daemon.schedule_retry(attempt, config)
        return "failed"
    finally:
        runlog.current_run.set(None)
        if daemon is not None:
            daemon.busy, daemon.ticket = False, None
            daemon.log_next()
        elif store is not None:
            store.close()


def _record_early_failure(
    store: Store | None, db_url: str | None, trigger: str, attempt: int, reason: str
) -> None:
    """A run whose config could not be read is still recorded ``failed``, with the reason."""
    own = store is None
    try:
        if store is None:
            if db_url is None:
                return  # the database is named in the unreadable config
            store = open_store(db_url)
        run_id = store.new_run_id()
        with store.write() as conn:
            runstate.insert_running(
                conn, run_id, started_at=now(), config=None, trigger=trigger, attempt=attempt
            )
            runstate.finish(conn, run_id, "failed", runlog.masked(reason))
        log.info("recorded as failed", extra={"run_id": run_id})
    except ApgError as exc:
        log.error("could not record the failure: %s", exc)
    finally:
        if own and store is not None:
            store.close()


def at(moment: datetime | None) -> str:
    if moment is None:
        return "none"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
