"""The scheduled job of ``apg daemon`` (:mod:`apg.service.daemon`), and the scheduler it runs in.

Jobs are stored in the apg database as the text reference ``apg.service.scheduler:scheduled_run``
with plain-string kwargs: the config *path* (never the config: it is re-read at every run, and
secrets come from ``${ENV}`` then), the database URL when it has no password, the trigger
(``schedule``, ``run-now``, ``retry``) and the retry attempt. Nothing the job meets stops the
daemon: it returns the run's status, having logged and recorded what happened.
"""

from __future__ import annotations

import logging
import pickle
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import sqlalchemy as sa
from apscheduler.schedulers.blocking import BlockingScheduler

from apg.config import Config, load_config
from apg.errors import ApgError
from apg.service import notify, runlog, webhook
from apg.store import Store, locks, now, open_store, runstate
from apg.store.runner import Cancel, RunInterrupted, Ticket, execute_run


class ActiveDaemon(Protocol):
    """What the job needs of the daemon running in this process (``apg.service.daemon``)."""

    busy: bool
    stopping: bool
    store: Store
    ticket: Ticket | None
    config: Config
    cancel: Cancel


JOB_FUNC = "apg.service.scheduler:scheduled_run"
JOBS_TABLE = "apg_scheduler_jobs"
SCHEDULE_JOB, RETRY_JOB, NOW_JOB = "apg-schedule", "apg-retry", "apg-run-now"
# Where the job function lived before the stage folders; jobs stored under it are renamed.
LEGACY_JOB_FUNCS = ("apg.scheduler:scheduled_run",)
log = logging.getLogger("apg.service.daemon")

_active: ActiveDaemon | None = None  # the daemon running in this process, if any


class Scheduler(BlockingScheduler):
    def _process_jobs(self) -> float | None:
        # A database hiccup while updating a job must not end the loop (and the daemon).
        try:
            return super()._process_jobs()  # type: ignore[no-any-return]
        except Exception as exc:
            log.error("scheduler: %s; retrying in %ss", exc, self.jobstore_retry_interval)
            return float(self.jobstore_retry_interval)


def upgrade_stored_jobs(engine: sa.Engine, table: str = JOBS_TABLE) -> int:
    """Point jobs stored under an old job function reference at ``JOB_FUNC``; returns how
    many. APScheduler keeps the reference as text inside each pickled job and drops a job it
    cannot resolve, so without this a daemon upgraded mid-week would lose a pending retry and
    the next fire time it kept."""
    if not sa.inspect(engine).has_table(table):
        return 0
    jobs = sa.Table(table, sa.MetaData(), autoload_with=engine)
    changed = 0
    with engine.begin() as conn:
        for job_id, blob in conn.execute(sa.select(jobs.c.id, jobs.c.job_state)).all():
            # Our own table, written by APScheduler's job store, which pickles the same way.
            state = pickle.loads(blob)
            if state.get("func") in LEGACY_JOB_FUNCS:
                state["func"] = JOB_FUNC
                blob = pickle.dumps(state, pickle.HIGHEST_PROTOCOL)
                conn.execute(jobs.update().where(jobs.c.id == job_id).values(job_state=blob))
                changed += 1
    return changed


def job_db_url(url: str) -> str | None:
    """The database URL as a job kwarg: pickled into the job store, so never with a password
    (None then: the job uses its daemon's database)."""
    return url if sa.make_url(url).password is None else None


def secrets_of(config: Config) -> list[str]:
    values = [v for spec in config.sources for v in spec.secret_values()]
    return values + [v for target in config.notify for v in webhook.secrets_of(target)]


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
        weak = outcome.stored.result.search.weak if outcome.stored is not None else []
        if weak:
            log.warning(
                "weak structure: read these personas as tentative (%s)",
                "; ".join(weak),
                extra={"event": "run-weak"},
            )
        if daemon is not None:
            daemon.drop_retry()
            daemon.ticket = None  # the run is over; only its notifications are left
        _notify(config, store, outcome.run_id, outcome.status, outcome.reason, trigger, attempt)
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
        run_id = ticket.run_id if ticket is not None else None
        if ticket is None and config is None:
            run_id = _record_early_failure(store, db_url, trigger, attempt, reason)
        if daemon is not None:
            daemon.schedule_retry(attempt, config)
            daemon.ticket = None
        # An unreadable config names no targets: the daemon's last good one does.
        told = config if config is not None else (daemon.config if daemon is not None else None)
        if told is not None:
            _notify(told, store, run_id, "failed", runlog.masked(reason), trigger, attempt)
        return "failed"
    finally:
        runlog.current_run.set(None)
        if daemon is not None:
            daemon.busy, daemon.ticket = False, None
            daemon.log_next()
        elif store is not None:
            store.close()


def _notify(
    config: Config,
    store: Store | None,
    run_id: str | None,
    status: str,
    reason: str | None,
    trigger: str,
    attempt: int,
) -> None:
    """Tell the configured webhooks how the run ended (bounded; never raises)."""
    if not config.notify:
        return
    news = notify.RunNews(
        run_id, status, reason, trigger, attempt, drift_threshold=config.continuity.drift_threshold
    )
    if store is not None and run_id is not None:
        try:
            news = notify.news_from_store(store, run_id, config)
        except Exception as exc:  # the database may be why the run failed
            log.warning("notifications without the run's details: %s", runlog.masked(str(exc)))
    notify.notify_run(config, store, news)


def _record_early_failure(
    store: Store | None, db_url: str | None, trigger: str, attempt: int, reason: str
) -> str | None:
    """A run whose config could not be read is still recorded ``failed``, with the reason;
    returns its id (None when it could not be recorded)."""
    own = store is None
    try:
        if store is None:
            if db_url is None:
                return None  # the database is named in the unreadable config
            store = open_store(db_url)
        run_id = store.new_run_id()
        with store.write() as conn:
            runstate.insert_running(
                conn, run_id, started_at=now(), config=None, trigger=trigger, attempt=attempt
            )
            runstate.finish(conn, run_id, "failed", runlog.masked(reason))
        log.info("recorded as failed", extra={"run_id": run_id})
        return run_id
    except ApgError as exc:
        log.error("could not record the failure: %s", exc)
        return None
    finally:
        if own and store is not None:
            store.close()


def at(moment: datetime | None) -> str:
    if moment is None:
        return "none"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
