"""One pipeline run against the store: lock, match identities, narrate what changed, record.

Used by ``apg run`` and the scheduler. A run first takes the run lock and commits a ``running``
row in one transaction (another live run makes it refuse with :class:`LockHeld`, or wait with
``wait=True``); a heartbeat thread keeps the lock fresh. The previous run is read before the
pipeline starts; the finished run is written in one transaction that also releases the lock.
A run that fails is recorded as ``failed`` with its error (and nothing else); one that is
stopped (``cancel`` set, Ctrl-C) as ``interrupted``. See :mod:`apg.store.runstate`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass

import sqlalchemy as sa

from apg.config import Config
from apg.errors import StoreError
from apg.pipeline import Progress, RunResult, load_table
from apg.pipeline import run as run_pipeline
from apg.profiles.identity import Continuity, Plan
from apg.profiles.narrative import Narrative
from apg.sources import SourceTable
from apg.sources.masking import mask_secrets
from apg.store import locks, record, runstate
from apg.store.engine import now
from apg.store.store import Store


class RunInterrupted(BaseException):
    """Raised inside a run (between stages) when it is asked to stop.

    A ``BaseException``, like ``KeyboardInterrupt``, so no ``except Exception`` in a stage
    swallows it.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Cancel(threading.Event):
    """Set (with a reason) to stop a run at its next progress message."""

    reason = "asked to stop"

    def request(self, reason: str) -> None:
        self.reason = reason
        self.set()


@dataclass
class Ticket:
    """A started run: its ``running`` row and the run lock it holds."""

    run_id: str
    token: str
    started_at: str
    trigger: str
    attempt: int = 0


@dataclass
class StoredRun:
    result: RunResult
    plan: Plan

    @property
    def run_id(self) -> str:
        return self.result.run_id


@dataclass
class RunOutcome:
    """How a run ended when it ended normally: succeeded, degraded or unchanged."""

    run_id: str
    status: str
    reason: str | None
    stored: StoredRun | None  # None for an unchanged run
    personas: int | None


def begin_run(
    store: Store,
    config: Config | None,
    *,
    trigger: str = "manual",
    attempt: int = 0,
    wait: bool = False,
    on_wait: Callable[[locks.LockHeld], None] | None = None,
    cancel: Cancel | None = None,
    poll: float = 0.5,
) -> Ticket:
    """Take the run lock and commit the ``running`` row (one transaction).

    Runs left ``running`` by dead processes are marked ``interrupted`` first. With ``wait``,
    polls every ``poll`` seconds until the lock is free (``on_wait`` is told once who holds
    it; ``cancel`` ends the wait with :class:`RunInterrupted`).
    """
    masked = None if config is None else record.masked_config(config)
    told = False
    while True:
        run_id = store.new_run_id(config)
        ticket = Ticket(run_id, locks.new_token(), now(), trigger, attempt)
        try:
            with store.write() as conn:
                runstate.recover_stale(conn, found_by=f"the next run ({run_id})")
                locks.acquire(
                    conn, locks.RUN, token=ticket.token, command=f"apg {trigger}", run_id=run_id
                )
                runstate.insert_running(
                    conn,
                    run_id,
                    started_at=ticket.started_at,
                    config=masked,
                    trigger=trigger,
                    attempt=attempt,
                )
            return ticket
        except locks.LockHeld as exc:
            locks.forget(ticket.token)
            if not wait:
                raise
            if not told and on_wait is not None:
                on_wait(exc)
            told = True
        except BaseException:
            locks.forget(ticket.token)
            raise
        if cancel is not None and cancel.wait(poll):
            raise RunInterrupted("stopped while waiting for another run to finish")
        if cancel is None:
            time.sleep(poll)


def end_run(store: Store, ticket: Ticket, status: str, reason: str, **values: object) -> bool:
    """Give a started run a final status without content and release its lock."""
    try:
        with store.write() as conn:
            done = runstate.finish(conn, ticket.run_id, status, reason, **values)
            locks.release(conn, locks.RUN, ticket.token)
        return done
    finally:
        locks.forget(ticket.token)


def judge_narratives(
    narratives: list[Narrative], what: str, total: int | None = None
) -> tuple[str, str | None]:
    """``degraded`` when some of ``narratives`` are the offline fallback, else ``succeeded``;
    the reason counts them out of ``total`` (default: all of them) ``what``."""
    fallback = [n for n in narratives if n.source == "offline-fallback"]
    if not fallback:
        return "succeeded", None
    first = fallback[0].reason or "the LLM was unavailable"
    return "degraded", (
        f"{len(fallback)} of {len(narratives) if total is None else total} {what} use the "
        f"offline text (source offline-fallback): {first}"
    )


def judge(plan: Plan) -> tuple[str, str | None]:
    """``degraded`` when some narratives drafted in this run are the offline fallback."""
    status, reason = judge_narratives(list(plan.drafts.values()), "new narratives")
    return status, reason[:4000] if reason else None


def _cancellable(
    progress: Progress | None, cancel: Cancel | None, lost: threading.Event
) -> Progress:
    """The progress callback, raising :class:`RunInterrupted` in the run's own thread when
    ``cancel`` is set or the lock was lost (checked at every progress message)."""
    owner = threading.current_thread()

    def say(message: str) -> None:
        if threading.current_thread() is owner:
            if lost.is_set():
                raise RunInterrupted("the run lock was taken over by another process")
            if cancel is not None and cancel.is_set():
                raise RunInterrupted(cancel.reason)
        if progress is not None:
            progress(message)

    return say


def execute_run(
    config: Config,
    store: Store,
    *,
    progress: Progress | None = None,
    table: SourceTable | None = None,
    trigger: str = "manual",
    attempt: int = 0,
    wait: bool = False,
    on_wait: Callable[[locks.LockHeld], None] | None = None,
    skip_unchanged: bool = False,
    cancel: Cancel | None = None,
    heartbeat: float = locks.HEARTBEAT_EVERY,
    on_start: Callable[[Ticket], None] | None = None,
) -> RunOutcome:
    """One run, start to final status. Raises what stopped it after recording it ``failed``
    (or ``interrupted`` for :class:`RunInterrupted` and ``KeyboardInterrupt``)."""
    ticket = begin_run(
        store, config, trigger=trigger, attempt=attempt, wait=wait, on_wait=on_wait, cancel=cancel
    )
    beat = locks.Heartbeat(store, locks.RUN, ticket.token, every=heartbeat).start()
    try:
        if on_start is not None:
            on_start(ticket)
        say = _cancellable(progress, cancel, beat.lost)
        return _execute(config, store, ticket, say, beat, table, skip_unchanged)
    except RunInterrupted as exc:
        _end_quietly(store, ticket, beat, "interrupted", exc.reason)
        raise
    except KeyboardInterrupt:
        _end_quietly(store, ticket, beat, "interrupted", "stopped with Ctrl-C (SIGINT)")
        raise
    except Exception as exc:
        reason = mask_secrets(f"{type(exc).__name__}: {exc}")
        _end_quietly(store, ticket, beat, "failed", reason)
        raise
    finally:
        beat.stop()
        locks.forget(ticket.token)


def _end_quietly(
    store: Store, ticket: Ticket, beat: locks.Heartbeat, status: str, reason: str
) -> None:
    # If the database is the problem, the original error matters more; the run stays
    # `running` and is marked interrupted by whoever finds it next.
    beat.stop()
    with suppress(StoreError):
        end_run(store, ticket, status, reason)


def _execute(
    config: Config,
    store: Store,
    ticket: Ticket,
    say: Progress,
    beat: locks.Heartbeat,
    table: SourceTable | None,
    skip_unchanged: bool,
) -> RunOutcome:
    """The run itself. The heartbeat stops before the final write (which releases the lock;
    writers are serialised, so it could not beat during that write anyway)."""
    if table is None and skip_unchanged:
        say("read: loading sources")
        table = load_table(config, say)
        with store.read() as conn:
            same = runstate.unchanged_since(conn, record.masked_config(config), table.fingerprint)
        if same is not None:
            same_as = f"same data ({table.fingerprint[:19]}…) and settings as {same['id']}"
            beat.stop()
            done = end_run(
                store,
                ticket,
                "unchanged",
                same_as,
                fingerprint=table.fingerprint,
                rows_read=len(table.frame),
                previous_run_id=same["id"],
            )
            if not done:
                raise StoreError(f"run {ticket.run_id} was taken over by another process")
            return RunOutcome(ticket.run_id, "unchanged", same_as, None, None)
    previous, taken = store.previous()
    hook = Continuity(previous, config.continuity, taken)
    result = run_pipeline(config, progress=say, table=table, run_id=ticket.run_id, continuity=hook)
    assert hook.plan is not None
    say("store: recording the run")
    status, reason = judge(hook.plan)
    beat.stop()
    _record(store, result, hook.plan, ticket, status, reason)
    counts = hook.plan.counts()
    say(
        f"store: recorded {ticket.run_id} as {status} in {store.display_url} ("
        + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        + ")"
    )
    return RunOutcome(
        ticket.run_id, status, reason, StoredRun(result, hook.plan), len(result.personas)
    )


def _record(
    store: Store, result: RunResult, plan: Plan, ticket: Ticket, status: str, reason: str | None
) -> None:
    """The whole run, its final status and the lock release in one transaction."""
    try:
        with store.write() as conn:
            record.record_run(
                conn,
                result,
                plan,
                started_at=ticket.started_at,
                finished_at=now(),
                status=status,
                reason=reason,
            )
            if not locks.release(conn, locks.RUN, ticket.token):
                raise StoreError(
                    f"run {ticket.run_id} lost its lock to another process; "
                    "its results were not recorded"
                )
    except sa.exc.IntegrityError as exc:
        raise StoreError(
            f"run {result.run_id} could not be recorded: {str(exc.orig).splitlines()[0]}; "
            "nothing of it was written"
        ) from None


def run_with_store(
    config: Config,
    store: Store,
    *,
    progress: Progress | None = None,
    table: SourceTable | None = None,
    wait: bool = False,
    on_wait: Callable[[locks.LockHeld], None] | None = None,
) -> StoredRun:
    """``apg run``: one run that always computes (no unchanged shortcut)."""
    outcome = execute_run(config, store, progress=progress, table=table, wait=wait, on_wait=on_wait)
    assert outcome.stored is not None
    return outcome.stored
