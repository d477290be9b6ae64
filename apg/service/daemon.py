"""``apg daemon``: an APScheduler 3.x ``BlockingScheduler`` that regenerates personas on a
schedule, unattended.

* The job store is persistent (``SQLAlchemyJobStore``, table ``apg_scheduler_jobs`` in the apg
  database); the job is ``apg.service.scheduler:scheduled_run`` (:mod:`apg.service.scheduler`).
* ``coalesce=True``, ``max_instances=1`` and ``misfire_grace_time`` from the config: a daemon
  that was down at fire time runs once when it is back within the grace, not once per missed
  fire. A restart with the same schedule keeps the stored next fire time for that reason.
* One worker thread runs the jobs; each run takes the database run lock (shared with
  ``apg run``; the daemon waits for a manual run rather than skipping its own).
* A failed run is retried per ``schedule.retry`` by a one-off job, never past the next
  regular fire time. Nothing a run raises stops the daemon.
* One daemon per database: a daemon lock with a heartbeat (``apg status`` reads it).
* SIGTERM/SIGINT: no new runs; the current one gets ``shutdown_grace`` seconds, then is asked
  to stop at its next stage boundary and recorded ``interrupted``. A stage that does not
  return within ``ABORT_WAIT`` more seconds (a long fit, a hung source) is abandoned: the run
  is recorded ``interrupted`` from the main thread and the process exits at once. A second
  signal skips the rest of the grace. The exit code is 0 either way.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.base import JobLookupError
from apscheduler.jobstores.memory import MemoryJobStore
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.triggers.date import DateTrigger

from apg.config import Config, load_config
from apg.errors import ApgError
from apg.service import runlog, scheduler, triggers
from apg.service.scheduler import (
    JOB_FUNC,
    JOBS_TABLE,
    NOW_JOB,
    RETRY_JOB,
    SCHEDULE_JOB,
    Scheduler,
    at,
    secrets_of,
    upgrade_stored_jobs,
)
from apg.store import locks, open_store, runstate
from apg.store.runner import Cancel, Ticket, end_run
from apg.version import __version__

ABORT_WAIT = 2.0  # seconds a cancelled run gets to reach a stage boundary
log = logging.getLogger("apg.service.daemon")


@dataclass
class Options:
    config_path: Path
    db: str | None = None
    cron: str | None = None
    interval: float | None = None
    run_now: bool = False
    heartbeat: float = locks.HEARTBEAT_EVERY


class _Stop(BaseException):
    """Raised in the main thread by the first SIGTERM/SIGINT to leave the scheduler loop."""


class Daemon:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.config = load_config(options.config_path)
        runlog.register_secrets(secrets_of(self.config))
        self.trigger = triggers.build_trigger(
            self.config.schedule, cron=options.cron, interval=options.interval
        )
        cron_text = options.cron or self.config.schedule.cron
        self.schedule = triggers.describe(self.trigger, cron_text)
        self.store = open_store(options.db, self.config.storage.url)
        self.job_db_url = scheduler.job_db_url(self.store.url)
        self.cancel = Cancel()
        self.token = locks.new_token()
        self.stopping = False
        self.busy = False
        self.ticket: Ticket | None = None
        self.signal_name: str | None = None
        self.hurry = False
        self.sched: Scheduler | None = None
        self.heartbeat: locks.Heartbeat | None = None

    # -- start ------------------------------------------------------------------------------
    def run(self) -> int:
        self._claim()
        try:
            self.sched = self._build_scheduler()
            scheduler._active = self
            try:
                signal.signal(signal.SIGTERM, self._on_signal)
                signal.signal(signal.SIGINT, self._on_signal)
                log.info(
                    "daemon started: pid %s on host %s, schedule %s, database %s",
                    os.getpid(),
                    locks.HOST,
                    self.schedule,
                    self.store.display_url,
                    extra={"event": "daemon-started"},
                )
                self.sched.start()
            except _Stop:
                pass
            return self._shutdown()
        finally:
            scheduler._active = None
            self._release()

    def _claim(self) -> None:
        """Take the daemon lock; mark runs left by dead processes interrupted."""
        me = f"apg daemon start (pid {os.getpid()} on host {locks.HOST})"
        detail = {
            "schedule": self.schedule,
            "config": str(self.options.config_path),
            "version": __version__,
            "heartbeat_every": self.options.heartbeat,
        }
        try:
            with self.store.write() as conn:
                marked = runstate.recover_stale(conn, found_by=me)
                locks.acquire(
                    conn, locks.DAEMON, token=self.token, command="apg daemon", detail=detail
                )
        except BaseException:
            locks.forget(self.token)
            self.store.close()
            raise
        for run_id, reason in marked:
            log.warning("run %s marked interrupted: %s", run_id, reason, extra={"run_id": run_id})
        self.heartbeat = locks.Heartbeat(
            self.store,
            locks.DAEMON,
            self.token,
            every=self.options.heartbeat,
            on_lost=lambda: os.kill(os.getpid(), signal.SIGTERM),
        ).start()

    def _build_scheduler(self) -> Scheduler:
        grace = self.config.schedule.misfire_grace_time
        sched = Scheduler(
            timezone=triggers.zone(self.config.schedule.timezone),
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": grace},
        )
        if upgraded := upgrade_stored_jobs(self.store.engine.execution_options(apg_write=True)):
            log.info("job store: %d job(s) moved to %s", upgraded, JOB_FUNC)
        # Job store transactions take SQLite's write lock up front, like the store's writes.
        jobs = SQLAlchemyJobStore(
            engine=self.store.engine.execution_options(apg_write=True), tablename=JOBS_TABLE
        )
        jobs.start(sched, "default")
        stored = None
        try:
            stored = jobs.lookup_job(SCHEDULE_JOB)
        except Exception as exc:  # an unreadable stored job is replaced
            log.warning("replacing the stored schedule job: %s", exc)
        keep: dict[str, Any] = {}
        if stored is not None and triggers.same_schedule(stored.trigger, self.trigger):
            if stored.next_run_time is not None:
                keep["next_run_time"] = stored.next_run_time
        elif stored is not None:
            log.info("schedule changed from %s to %s", stored.trigger, self.schedule)
        sched.add_jobstore(jobs, "default")
        sched.add_jobstore(MemoryJobStore(), "memory")
        sched.add_listener(self._on_missed, EVENT_JOB_MISSED)
        sched.add_job(
            JOB_FUNC,
            self.trigger,
            id=SCHEDULE_JOB,
            name="apg scheduled run",
            kwargs=self._kwargs("schedule"),
            replace_existing=True,
            jobstore="default",
            **keep,
        )
        if "next_run_time" in keep:
            log.info("next scheduled run: %s (kept from the job store)", at(keep["next_run_time"]))
        if self.options.run_now:
            sched.add_job(
                JOB_FUNC,
                DateTrigger(datetime.now(UTC)),
                id=NOW_JOB,
                name="apg run now",
                kwargs=self._kwargs("run-now"),
                jobstore="memory",
                misfire_grace_time=None,
            )
        return sched

    def _kwargs(self, trigger: str, attempt: int = 0) -> dict[str, Any]:
        return {
            "config_path": str(self.options.config_path.resolve()),
            "db_url": self.job_db_url,
            "trigger": trigger,
            "attempt": attempt,
        }

    # -- while running ----------------------------------------------------------------------
    def next_regular(self) -> datetime | None:
        assert self.sched is not None
        job = self.sched.get_job(SCHEDULE_JOB)
        return None if job is None else job.next_run_time

    def schedule_retry(self, attempt: int, config: Config | None) -> None:
        if self.stopping or self.sched is None:
            return
        retry = (config or self.config).schedule.retry
        try:
            regular = self.next_regular()
            when = triggers.retry_at(datetime.now(UTC), retry, attempt, regular)
            if when is None:
                why = (
                    f"all {retry.attempts} retries used"
                    if attempt >= retry.attempts
                    else f"a retry in {retry.delay_seconds:g}s would not come first"
                )
                log.info("no retry (%s); next scheduled run: %s", why, at(regular))
                return
            self.sched.add_job(
                JOB_FUNC,
                DateTrigger(when),
                id=RETRY_JOB,
                name="apg retry",
                kwargs=self._kwargs("retry", attempt + 1),
                replace_existing=True,
                jobstore="default",
            )
            log.info("retry %d of %d at %s", attempt + 1, retry.attempts, at(when))
        except Exception as exc:
            log.error("could not schedule a retry: %s", exc)

    def log_next(self) -> None:
        if self.stopping or self.sched is None:
            return
        try:
            jobs = [j for j in self.sched.get_jobs() if j.next_run_time is not None]
        except Exception as exc:
            log.warning("could not read the next fire time: %s", exc)
            return
        if jobs:
            first = min(jobs, key=lambda j: j.next_run_time)
            log.info("next run: %s (%s)", at(first.next_run_time), first.name)

    def drop_retry(self) -> None:
        """A run succeeded: a pending retry (of an earlier failure) is no longer needed."""
        if self.sched is None:
            return
        try:
            self.sched.remove_job(RETRY_JOB)
        except JobLookupError:
            pass
        except Exception as exc:
            log.warning("could not drop the pending retry: %s", exc)

    def _on_missed(self, event: JobExecutionEvent) -> None:
        late = (datetime.now(UTC) - event.scheduled_run_time).total_seconds()
        log.warning(
            "missed the run due at %s by %.0fs (more than misfire_grace_time=%ss)",
            at(event.scheduled_run_time),
            late,
            self.config.schedule.misfire_grace_time,
            extra={"event": "run-missed"},
        )

    # -- stop -------------------------------------------------------------------------------
    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.signal_name is None:
            self.signal_name = signal.Signals(signum).name
            raise _Stop
        self.hurry = True  # a second signal: stop waiting for the grace

    def _shutdown(self) -> int:
        assert self.sched is not None
        self.stopping = True
        grace = self.config.schedule.shutdown_grace
        why = self.signal_name or "the scheduler stopped"
        log.info("stopping (%s): no new runs", why, extra={"event": "daemon-stopping"})
        try:
            self.sched.shutdown(wait=False)
        except Exception as exc:  # e.g. the job store's database is down
            log.warning("scheduler shutdown: %s", exc)
        if self.busy:
            log.info("waiting up to %ss for the current run to finish", f"{grace:g}")
        if not self._wait_idle(grace):
            reason = f"the daemon was stopped ({why}) and the run did not finish within " + (
                f"shutdown_grace={grace:g}s"
            )
            self.cancel.request(reason)
            if not self._wait_idle(ABORT_WAIT, hurry_ok=False):
                self._abandon(reason)
        log.info("daemon stopped", extra={"event": "daemon-stopped"})
        return 0

    def _wait_idle(self, seconds: float, hurry_ok: bool = True) -> bool:
        end = time.monotonic() + seconds
        while self.busy and time.monotonic() < end and not (hurry_ok and self.hurry):
            time.sleep(0.05)
        return not self.busy

    def _abandon(self, reason: str) -> None:
        """The run is stuck inside a stage: record it interrupted and exit without it."""
        ticket = self.ticket
        if ticket is not None:
            try:
                end_run(self.store, ticket, "interrupted", f"{reason}; aborted mid-stage")
                log.warning(
                    "run interrupted: %s; aborted mid-stage",
                    reason,
                    extra={"run_id": ticket.run_id},
                )
            except ApgError as exc:
                log.error("could not record the interruption: %s", exc)
        self._release()
        log.info("daemon stopped", extra={"event": "daemon-stopped"})
        logging.shutdown()
        os._exit(0)  # the stuck worker thread cannot be joined

    def _release(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat.stop()
            self.heartbeat = None
        try:
            with self.store.write() as conn:
                locks.release(conn, locks.DAEMON, self.token)
        except ApgError as exc:
            log.warning("could not release the daemon lock: %s", exc)
        finally:
            locks.forget(self.token)
        self.store.close()
