"""Notification records (``apg_notifications``) and the facts of a run a notification tells.

One row per message the daemon posted (or failed to post) to a webhook after a run. Rows hold
the masked target URL and masked error text only (apg.service.webhook masks them before they
get here): never a header value, a URL password, query string or path token.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from apg.store import schema as t
from apg.store.engine import now
from apg.store.queries import list_personas


@dataclass
class Delivery:
    """How one message to one target went."""

    target: str  # masked URL
    format: str
    event: str
    events: list[str] = field(default_factory=list)
    status: str = "failed"  # sent | failed
    attempts: int = 0
    http_status: int | None = None
    error: str | None = None
    seconds: float = 0.0


def record(conn: sa.Connection, run_id: str, deliveries: list[Delivery]) -> None:
    """Store the deliveries of a run (inside the caller's write transaction)."""
    if not deliveries:
        return
    stamp = now()
    conn.execute(
        t.notifications.insert(),
        [
            {
                "run_id": run_id,
                "target": d.target[:512],
                "format": d.format,
                "event": d.event,
                "events": d.events,
                "status": d.status,
                "attempts": d.attempts,
                "http_status": d.http_status,
                "error": None if d.error is None else d.error[:4000],
                "seconds": round(d.seconds, 3),
                "sent_at": stamp,
            }
            for d in deliveries
        ],
    )


def for_run(conn: sa.Connection, run_id: str) -> list[dict[str, Any]]:
    """The run's deliveries, oldest first (``[]`` on a database without any)."""
    n = t.notifications
    rows = conn.execute(
        sa.select(n).where(n.c.run_id == run_id).order_by(n.c.sent_at, n.c.id)
    ).all()
    return [{k: v for k, v in row._mapping.items() if k != "run_id"} for row in rows]


def run_exists(conn: sa.Connection, run_id: str) -> bool:
    found = conn.execute(sa.select(t.runs.c.id).where(t.runs.c.id == run_id)).first()
    return found is not None


def run_facts(conn: sa.Connection, run_id: str) -> dict[str, Any]:
    """What a notification reports about a finished run.

    ``personas`` are the run's own (for an ``unchanged`` run: those of the run it matched),
    each with the name drafted in this run when there is one (a changed persona's new draft
    is what reviewers are asked to look at), else its current name, and its drift score.
    """
    r = t.runs
    row = conn.execute(
        sa.select(
            r.c.id,
            r.c.status,
            r.c.reason,
            r.c.error,
            r.c.trigger,
            r.c.attempt,
            r.c.started_at,
            r.c.finished_at,
            r.c.previous_run_id,
            r.c.weak,
            r.c.n_clusters,
        ).where(r.c.id == run_id)
    ).one()
    facts: dict[str, Any] = dict(row._mapping)
    facts["weak"] = list(row.weak or [])
    source = run_id if row.status in ("succeeded", "degraded") else None
    if row.status == "unchanged" and row.previous_run_id:
        source = row.previous_run_id
    facts["personas_run_id"] = source
    facts["personas"] = [] if source is None else _personas(conn, source, drafted_in=run_id)
    return facts


def _personas(conn: sa.Connection, run_id: str, drafted_in: str) -> list[dict[str, Any]]:
    n = t.narratives
    drafted = {
        pid: body.get("name") if isinstance(body, dict) else None
        for pid, body in conn.execute(
            sa.select(n.c.persona_id, n.c.body)
            .where(n.c.run_id == drafted_in, n.c.status == "draft")
            .order_by(n.c.version)
        )
    }
    out = []
    for p in list_personas(conn, run_id):
        drift = p["drift"] or {}
        out.append(
            {
                "id": p["persona_id"],
                "name": drafted.get(p["persona_id"]) or p["name"],
                "status": p["status"],
                "review": p["review"],
                "size": p["size"],
                "share": p["share"],
                "drift": drift.get("score"),
            }
        )
    return out
