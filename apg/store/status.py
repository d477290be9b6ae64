"""What ``apg status`` reports: is a daemon alive, what runs now, what ran, what runs next.

The daemon's liveness is its lock row (``apg_locks``, name ``daemon``), judged as a new
daemon would judge it: alive while its pid exists (same host) and its heartbeat is younger
than ``apg.store.locks.STALE_AFTER``. The next fire times come from the scheduler's job table,
so they show while the daemon is down too (a fire missed then runs at its next start if
within the grace).
"""

from __future__ import annotations

from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from apg.errors import StoreError
from apg.store import locks, runstate
from apg.store import schema as t
from apg.store.store import Store

JOBS_TABLE = "apg_scheduler_jobs"  # apg.service.scheduler.JOBS_TABLE (not imported: no APScheduler)
JOB_KINDS = {"apg-schedule": "schedule", "apg-retry": "retry"}


def daemon_state(holder: locks.Holder | None) -> dict[str, Any]:
    """``{"state": "running" | "dead" | "not running", ...}`` with the holder's details."""
    if holder is None:
        return {"state": "not running"}
    doc = holder.to_dict()
    doc.pop("name", None)
    doc.pop("run_id", None)
    why = locks.dead_reason(holder)
    doc["state"] = "running" if why is None else "dead"
    if why is not None:
        doc["reason"] = why
    return doc


def duration(started: str | None, finished: str | None) -> float | None:
    if not started or not finished:
        return None
    return (locks.parse_time(finished) - locks.parse_time(started)).total_seconds()


def last_runs(conn: sa.Connection, limit: int) -> list[dict[str, Any]]:
    r = t.runs
    rows = conn.execute(
        sa.select(
            r.c.id,
            r.c.status,
            r.c.trigger,
            r.c.attempt,
            r.c.started_at,
            r.c.finished_at,
            r.c.n_clusters,
            r.c.reason,
            r.c.error,
            r.c.pid,
            r.c.host,
            r.c.previous_run_id,
            r.c.weak,
        )
        .order_by(r.c.started_at.desc(), r.c.id.desc())
        .limit(limit)
    ).all()
    out = []
    for row in rows:
        m = dict(row._mapping)
        m["reason"] = m.pop("reason") or m.pop("error")
        m.pop("error", None)
        m["personas"] = m.pop("n_clusters")
        m["seconds"] = duration(m["started_at"], m["finished_at"])
        out.append(m)
    return out


def next_fires(conn: sa.Connection) -> list[dict[str, Any]]:
    """The scheduler's pending jobs, soonest first (empty before the first daemon start)."""
    if not sa.inspect(conn).has_table(JOBS_TABLE):
        return []
    jobs = sa.table(JOBS_TABLE, sa.column("id"), sa.column("next_run_time"))
    found = conn.execute(
        sa.select(jobs.c.id, jobs.c.next_run_time)
        .where(jobs.c.next_run_time.is_not(None))
        .order_by(jobs.c.next_run_time)
    ).all()
    return [
        {
            "job": JOB_KINDS.get(job_id, job_id),
            "at": datetime.fromtimestamp(float(stamp), UTC)
            .isoformat(timespec="seconds")
            .replace("+00:00", "Z"),
        }
        for job_id, stamp in found
    ]


def status(store: Store, limit: int = 10) -> dict[str, Any]:
    """Everything ``apg status`` prints. Runs left ``running`` by dead processes are marked
    ``interrupted`` first (unless the database is read-only to us)."""
    recovered: list[tuple[str, str]] = []
    with suppress(StoreError), store.write() as conn:
        recovered = runstate.recover_stale(conn, found_by="apg status")
    with store.read() as conn:
        holder = locks.read(conn, locks.DAEMON)
        run_lock = locks.read(conn, locks.RUN)
        runs = last_runs(conn, limit)
        fires = next_fires(conn)
    daemon = daemon_state(holder)
    return {
        "database": store.display_url,
        "daemon": daemon,
        "schedule": (holder.detail or {}).get("schedule") if holder else None,
        "current_run": None if run_lock is None else run_lock.to_dict(),
        "next_runs": fires,
        "runs": runs,
        "marked_interrupted": [{"run_id": r, "reason": why} for r, why in recovered],
    }
