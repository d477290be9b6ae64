"""A run's life in ``apg_runs``: ``running``, then exactly one final status.

* ``running``: committed (with pid, host, trigger) together with the run lock as the run
  starts, so a run in progress is visible;
* ``succeeded`` / ``degraded``: the run's whole content is written in one transaction that
  also turns the ``running`` row final and releases the lock (``degraded``: some narratives
  fell back to the offline text because the LLM was unavailable; the reason says which);
* ``unchanged``: the sources' fingerprint and the settings equal the last run with personas,
  so nothing was clustered or narrated;
* ``failed``: an error stopped it (the reason is the error);
* ``interrupted``: it was stopped (daemon shutdown past its grace, Ctrl-C), or its process
  died (``kill -9``, a crash): then only the ``running`` row was left, and whoever finds it
  first (a daemon start, ``apg status``, the next run taking the lock) marks it.
"""

from __future__ import annotations

import json
import os
from typing import Any

import sqlalchemy as sa

from apg.errors import StoreError
from apg.store import locks
from apg.store import schema as t
from apg.store.engine import now
from apg.store.queries import latest_run_id
from apg.version import __version__

STATUSES = ("running", "succeeded", "unchanged", "degraded", "failed", "interrupted")
FINAL = STATUSES[1:]

# Keys of the config that do not change what a run computes (ignored by the unchanged test).
_NOT_SETTINGS = ("schedule", "storage")


def insert_running(
    conn: sa.Connection,
    run_id: str,
    *,
    started_at: str,
    config: dict[str, Any] | None,
    trigger: str,
    attempt: int = 0,
) -> None:
    conn.execute(
        t.runs.insert().values(
            id=run_id,
            started_at=started_at,
            status="running",
            apg_version=__version__,
            config=sa.null() if config is None else config,
            pid=os.getpid(),
            host=locks.HOST,
            trigger=trigger,
            attempt=attempt,
        )
    )


def save_run(conn: sa.Connection, values: dict[str, Any]) -> None:
    """Turn the run's ``running`` row into ``values``, or insert it when there is none.

    A row that is no longer ``running`` was marked ``interrupted`` by another process that
    presumed this one dead: the results are refused (the transaction rolls back).
    """
    r = t.runs
    run_id = values["id"]
    found = conn.execute(sa.select(r.c.status, r.c.reason).where(r.c.id == run_id)).first()
    if found is None:
        conn.execute(r.insert().values(**values))
        return
    if found.status != "running":
        raise StoreError(
            f"run {run_id} is no longer running: it was marked {found.status} "
            f"({found.reason or 'no reason given'}); its results were not recorded"
        )
    update = {k: v for k, v in values.items() if k not in ("id", "started_at")}
    conn.execute(r.update().where(r.c.id == run_id).values(**update))


def finish(conn: sa.Connection, run_id: str, status: str, reason: str, **values: Any) -> bool:
    """Give a ``running`` run its final status without content; False if it was not running."""
    assert status in FINAL, status
    column = {"error": reason[:4000]} if status == "failed" else {}
    done = conn.execute(
        t.runs.update()
        .where(t.runs.c.id == run_id, t.runs.c.status == "running")
        .values(status=status, reason=reason[:4000], finished_at=now(), **column, **values)
    ).rowcount
    return bool(done)


def dead_runs(conn: sa.Connection, stale_after: float = locks.STALE_AFTER) -> dict[str, str]:
    """Every ``running`` run whose process is gone, with why; reads only, so any reader can
    show such a run as ``interrupted`` before a writer records it."""
    holder = locks.read(conn, locks.RUN)
    live_run, holder_gone = None, None
    if holder is not None:
        holder_gone = locks.dead_reason(holder, stale_after)
        if holder_gone is None:
            live_run = holder.run_id
    r = t.runs
    rows = conn.execute(
        sa.select(r.c.id, r.c.pid, r.c.host).where(r.c.status == "running").order_by(r.c.id)
    ).all()
    dead = {}
    for row in rows:
        if row.id == live_run:
            continue
        if holder is not None and holder_gone and row.id == holder.run_id:
            dead[row.id] = holder_gone
        else:  # the lock goes with the final status, so no lock means the process is gone
            dead[row.id] = f"pid {row.pid} on host {row.host} stopped without finishing it"
    return dead


def recover_stale(
    conn: sa.Connection, found_by: str, stale_after: float = locks.STALE_AFTER
) -> list[tuple[str, str]]:
    """Mark ``interrupted`` every ``running`` run whose process is gone; drop a dead holder's
    run lock. Returns ``(run id, reason)`` per run marked. Call inside a write transaction."""
    dead = dead_runs(conn, stale_after)
    holder = locks.read(conn, locks.RUN)
    if holder is not None and locks.dead_reason(holder, stale_after) is not None:
        locks.release(conn, locks.RUN, holder.token)
    marked = []
    for run_id, why in dead.items():
        reason = f"{why}; found by {found_by}"
        if finish(conn, run_id, "interrupted", reason):
            marked.append((run_id, reason))
    return marked


def settings_key(config: dict[str, Any] | None) -> str:
    """The stored (masked) config minus keys that do not change a run's result."""
    kept = {k: v for k, v in (config or {}).items() if k not in _NOT_SETTINGS}
    return json.dumps(kept, sort_keys=True, default=str)


def unchanged_since(
    conn: sa.Connection, config: dict[str, Any], fingerprint: str
) -> dict[str, Any] | None:
    """The last run with personas when it had the same data fingerprint and settings."""
    run_id = latest_run_id(conn)
    if run_id is None:
        return None
    r = t.runs
    row = conn.execute(
        sa.select(r.c.id, r.c.fingerprint, r.c.config, r.c.n_clusters).where(r.c.id == run_id)
    ).one()
    same_data = row.fingerprint == fingerprint
    same_settings = settings_key(row.config) == settings_key(json.loads(json.dumps(config)))
    if not (same_data and same_settings):
        return None
    return dict(row._mapping)
