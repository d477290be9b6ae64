"""The tables at the latest schema version, for queries (SQLAlchemy Core).

``apg.store.migrations`` creates and upgrades them; a test checks that a migrated database has
exactly these columns. Times are ISO-8601 UTC text with microseconds (``...T03:00:00.000123Z``)
so they sort and compare the same way on SQLite and PostgreSQL.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import sqlalchemy as sa

metadata = sa.MetaData()

ID = sa.String(64)
TIME = sa.String(32)

schema_version = sa.Table(
    "apg_schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("applied_at", TIME, nullable=False),
)

runs = sa.Table(
    "apg_runs",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("started_at", TIME, nullable=False),
    sa.Column("finished_at", TIME),
    sa.Column("status", sa.String(16), nullable=False),  # apg.store.runstate.STATUSES
    sa.Column("error", sa.Text),
    sa.Column("apg_version", sa.String(32), nullable=False),
    sa.Column("config", sa.JSON),  # secrets masked
    sa.Column("config_hash", sa.String(80)),
    sa.Column("content_id", sa.String(80)),  # pipeline.run_identity: data + config + version
    sa.Column("fingerprint", sa.String(80)),
    sa.Column("rows_read", sa.Integer),
    sa.Column("rows_used", sa.Integer),
    sa.Column("rows_dropped", sa.Integer),
    sa.Column("algorithm", sa.String(32)),
    sa.Column("params", sa.JSON),
    sa.Column("n_clusters", sa.Integer),
    sa.Column("silhouette", sa.Float),
    sa.Column("noise_share", sa.Float),
    sa.Column("summary", sa.JSON),  # data + selection sections of personas.json, timings
    # v2: identity across runs
    sa.Column("previous_run_id", ID),
    sa.Column("match_method", sa.String(16)),  # members | centroid | None (first run)
    sa.Column("shared_ids", sa.Float),
    sa.Column("feature_stats", sa.JSON),  # numeric feature -> [mean, std] of this run
    # v4: the daemon
    sa.Column("reason", sa.Text),  # why it ended so: unchanged, degraded, interrupted
    sa.Column("pid", sa.Integer),  # the process that ran it
    sa.Column("host", sa.String(255)),
    sa.Column("trigger", sa.String(16)),  # manual | schedule | run-now | retry
    sa.Column("attempt", sa.Integer),  # 0, then 1.. for retries of a failed scheduled run
    # v6: why the chosen structure is weak ([] when it is not; NULL before v6)
    sa.Column("weak", sa.JSON),
)

candidates = sa.Table(
    "apg_candidates",
    metadata,
    sa.Column("run_id", ID, sa.ForeignKey("apg_runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("algorithm", sa.String(32), nullable=False),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("n_clusters", sa.Integer, nullable=False),
    sa.Column("noise_share", sa.Float),
    sa.Column("min_cluster_share", sa.Float),
    sa.Column("silhouette", sa.Float),
    sa.Column("davies_bouldin", sa.Float),
    sa.Column("calinski_harabasz", sa.Float),
    sa.Column("inertia", sa.Float),
    sa.Column("eligible", sa.Boolean, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("selected", sa.Boolean, nullable=False),
    sa.Column("seconds", sa.Float),
    # v6: the selection rule's figures (apg.search.selection); stability NULL: not refitted
    sa.Column("choice_silhouette", sa.Float),
    sa.Column("stability", sa.Float),
    sa.Column("evenness", sa.Float),
)

models = sa.Table(
    "apg_models",
    metadata,
    sa.Column("run_id", ID, sa.ForeignKey("apg_runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("algorithm", sa.String(32), nullable=False),
    sa.Column("document", sa.Text, nullable=False),  # apg.search.model_io JSON, never pickle
)

personas = sa.Table(
    "apg_personas",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("created_run_id", ID, sa.ForeignKey("apg_runs.id"), nullable=False),
    sa.Column("created_at", TIME, nullable=False),
)

persona_runs = sa.Table(
    "apg_persona_runs",
    metadata,
    sa.Column("run_id", ID, sa.ForeignKey("apg_runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("persona_id", sa.String(32), sa.ForeignKey("apg_personas.id"), primary_key=True),
    sa.Column("cluster", sa.Integer),  # None for a retired persona
    sa.Column("rank", sa.Integer),  # 1 = largest in the run
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("share", sa.Float, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # new|continuing|changed|retired
    sa.Column("profile", sa.JSON),  # PersonaProfile without its narrative
    # v2: identity across runs
    sa.Column("matched_by", sa.String(16)),  # members | centroid
    sa.Column("similarity", sa.Float),  # Jaccard, or centroid distance
    sa.Column("drift", sa.JSON),
    # v9: the carried narrative's numbers checked against this run's facts
    # (apg.narration.freshness): {version, base_version, stale: [...], refreshed: [...]}
    sa.Column("freshness", sa.JSON),
    sa.Index("ix_apg_persona_runs_persona", "persona_id"),
)

narratives = sa.Table(
    "apg_narratives",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("persona_id", sa.String(32), sa.ForeignKey("apg_personas.id"), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("run_id", ID, sa.ForeignKey("apg_runs.id")),  # the run that drafted it
    sa.Column("origin", sa.String(16), nullable=False),  # generated | edited
    sa.Column("body", sa.JSON, nullable=False),  # apg.profiles.narrative.Narrative
    sa.Column("status", sa.String(16), nullable=False),  # draft | approved | rejected
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("created_at", TIME, nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("reviewed_by", sa.String(128)),
    sa.Column("reviewed_at", TIME),
    sa.Column("review_note", sa.Text),
    sa.UniqueConstraint("persona_id", "version", name="uq_apg_narratives_version"),
)

members = sa.Table(  # v2
    "apg_members",
    metadata,
    sa.Column("run_id", ID, sa.ForeignKey("apg_runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("user_id", sa.String(256), primary_key=True),
    sa.Column("cluster", sa.Integer, nullable=False),  # -1: outlier
)

llm_calls = sa.Table(  # v3
    "apg_llm_calls",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", ID, sa.ForeignKey("apg_runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("persona_id", sa.String(32)),
    sa.Column("seq", sa.Integer),
    sa.Column("purpose", sa.String(16)),
    sa.Column("model", sa.String(128)),
    sa.Column("status", sa.String(16)),
    sa.Column("latency_ms", sa.Float),
    sa.Column("started_at", TIME),
    sa.Column("record", sa.JSON, nullable=False),
    sa.Index("ix_apg_llm_calls_run", "run_id"),
)

reports = sa.Table(  # v5: apg.store.reports
    "apg_reports",
    metadata,
    sa.Column("run_id", ID, sa.ForeignKey("apg_runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("data", sa.JSON, nullable=False),  # ReportData; arrays as base64 .npy
)

locks = sa.Table(  # v4: one run at a time, one daemon per database (apg.store.locks)
    "apg_locks",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),  # run | daemon
    sa.Column("token", sa.String(32), nullable=False),  # the holder's own random id
    sa.Column("run_id", ID),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("command", sa.String(64), nullable=False),  # e.g. "apg run", "apg daemon"
    sa.Column("started_at", TIME, nullable=False),
    sa.Column("heartbeat_at", TIME, nullable=False),
    sa.Column("detail", sa.JSON),  # the daemon's schedule, config path, version
)


notifications = sa.Table(  # v7: webhook deliveries after daemon runs (apg.service.notify)
    "apg_notifications",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", ID, sa.ForeignKey("apg_runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("target", sa.String(512), nullable=False),  # masked URL, never the secret parts
    sa.Column("format", sa.String(16), nullable=False),  # json | slack
    sa.Column("event", sa.String(16), nullable=False),  # the event the message named
    sa.Column("events", sa.JSON),  # every event of the run, in precedence order
    sa.Column("status", sa.String(16), nullable=False),  # sent | failed
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("http_status", sa.Integer),  # the last answer's status; NULL: no answer
    sa.Column("error", sa.Text),  # masked
    sa.Column("seconds", sa.Float),
    sa.Column("sent_at", TIME, nullable=False),
    sa.Index("ix_apg_notifications_run", "run_id"),
)

web_sessions = sa.Table(  # v8: logged-in review-page sessions (apg.store.sessions)
    "apg_web_sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),  # SHA-256 of the cookie's id, not the id
    sa.Column("created_at", TIME, nullable=False),
    sa.Column("expires_at", TIME, nullable=False),
    sa.Index("ix_apg_web_sessions_expires", "expires_at"),
)


def jsonable(value: Any) -> Any:
    """Plain JSON values: numpy scalars to Python, NaN and infinities to null."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
