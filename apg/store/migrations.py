"""The database schema as an ordered list of migrations, applied when a store is opened.

Each migration is a function of an open connection inside the upgrade transaction; its tables
are spelled out here as they were at that version (never imported from ``apg.store.schema``,
which shows only the latest shape), so an old database upgrades step by step to the current
one. ``apg_schema_version`` has one row per applied migration. All pending migrations run in
one transaction (PostgreSQL and SQLite both have transactional DDL): an interrupted upgrade
leaves the database at its old version. To change the schema, append a migration; never edit
one that has shipped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from apg.errors import StoreError

ID = sa.String(64)
TIME = sa.String(32)
PID = sa.String(32)


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    upgrade: Callable[[sa.Connection], None]


def add_column(conn: sa.Connection, table: str, column: sa.Column[object]) -> None:
    """``ALTER TABLE .. ADD COLUMN`` in the connection's SQL dialect."""
    ddl = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
    conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {ddl}"))


def _v1_core(conn: sa.Connection) -> None:
    md = sa.MetaData()
    sa.Table(
        "apg_runs",
        md,
        sa.Column("id", ID, primary_key=True),
        sa.Column("started_at", TIME, nullable=False),
        sa.Column("finished_at", TIME),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("apg_version", sa.String(32), nullable=False),
        sa.Column("config", sa.JSON),
        sa.Column("config_hash", sa.String(80)),
        sa.Column("content_id", sa.String(80)),
        sa.Column("fingerprint", sa.String(80)),
        sa.Column("rows_read", sa.Integer),
        sa.Column("rows_used", sa.Integer),
        sa.Column("rows_dropped", sa.Integer),
        sa.Column("algorithm", sa.String(32)),
        sa.Column("params", sa.JSON),
        sa.Column("n_clusters", sa.Integer),
        sa.Column("silhouette", sa.Float),
        sa.Column("noise_share", sa.Float),
        sa.Column("summary", sa.JSON),
    )
    sa.Table(
        "apg_candidates",
        md,
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
    )
    sa.Table(
        "apg_models",
        md,
        sa.Column("run_id", ID, sa.ForeignKey("apg_runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("algorithm", sa.String(32), nullable=False),
        sa.Column("document", sa.Text, nullable=False),
    )
    sa.Table(
        "apg_personas",
        md,
        sa.Column("id", PID, primary_key=True),
        sa.Column("created_run_id", ID, sa.ForeignKey("apg_runs.id"), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
    )
    sa.Table(
        "apg_persona_runs",
        md,
        sa.Column("run_id", ID, sa.ForeignKey("apg_runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("persona_id", PID, sa.ForeignKey("apg_personas.id"), primary_key=True),
        sa.Column("cluster", sa.Integer),
        sa.Column("rank", sa.Integer),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("share", sa.Float, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("profile", sa.JSON),
        sa.Index("ix_apg_persona_runs_persona", "persona_id"),
    )
    sa.Table(
        "apg_narratives",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("persona_id", PID, sa.ForeignKey("apg_personas.id"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("run_id", ID, sa.ForeignKey("apg_runs.id")),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("reviewed_by", sa.String(128)),
        sa.Column("reviewed_at", TIME),
        sa.Column("review_note", sa.Text),
        sa.UniqueConstraint("persona_id", "version", name="uq_apg_narratives_version"),
    )
    md.create_all(conn)


def _v2_identity(conn: sa.Connection) -> None:
    add_column(conn, "apg_runs", sa.Column("previous_run_id", ID))
    add_column(conn, "apg_runs", sa.Column("match_method", sa.String(16)))
    add_column(conn, "apg_runs", sa.Column("shared_ids", sa.Float))
    add_column(conn, "apg_runs", sa.Column("feature_stats", sa.JSON))
    add_column(conn, "apg_persona_runs", sa.Column("matched_by", sa.String(16)))
    add_column(conn, "apg_persona_runs", sa.Column("similarity", sa.Float))
    add_column(conn, "apg_persona_runs", sa.Column("drift", sa.JSON))
    md = sa.MetaData()
    sa.Table("apg_runs", md, sa.Column("id", ID, primary_key=True))
    sa.Table(
        "apg_members",
        md,
        sa.Column("run_id", ID, sa.ForeignKey("apg_runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("user_id", sa.String(256), primary_key=True),
        sa.Column("cluster", sa.Integer, nullable=False),
    )
    md.tables["apg_members"].create(conn)


def _v3_llm_calls(conn: sa.Connection) -> None:
    md = sa.MetaData()
    sa.Table("apg_runs", md, sa.Column("id", ID, primary_key=True))
    sa.Table(
        "apg_llm_calls",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", ID, sa.ForeignKey("apg_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("persona_id", PID),
        sa.Column("seq", sa.Integer),
        sa.Column("purpose", sa.String(16)),
        sa.Column("model", sa.String(128)),
        sa.Column("status", sa.String(16)),
        sa.Column("latency_ms", sa.Float),
        sa.Column("started_at", TIME),
        sa.Column("record", sa.JSON, nullable=False),
        sa.Index("ix_apg_llm_calls_run", "run_id"),
    )
    md.tables["apg_llm_calls"].create(conn)


def _v4_daemon(conn: sa.Connection) -> None:
    add_column(conn, "apg_runs", sa.Column("reason", sa.Text))
    add_column(conn, "apg_runs", sa.Column("pid", sa.Integer))
    add_column(conn, "apg_runs", sa.Column("host", sa.String(255)))
    add_column(conn, "apg_runs", sa.Column("trigger", sa.String(16)))
    add_column(conn, "apg_runs", sa.Column("attempt", sa.Integer))
    md = sa.MetaData()
    sa.Table(
        "apg_locks",
        md,
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("token", sa.String(32), nullable=False),
        sa.Column("run_id", ID),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("command", sa.String(64), nullable=False),
        sa.Column("started_at", TIME, nullable=False),
        sa.Column("heartbeat_at", TIME, nullable=False),
        sa.Column("detail", sa.JSON),
    )
    md.tables["apg_locks"].create(conn)


def _v5_reports(conn: sa.Connection) -> None:
    md = sa.MetaData()
    sa.Table("apg_runs", md, sa.Column("id", ID, primary_key=True))
    sa.Table(
        "apg_reports",
        md,
        sa.Column("run_id", ID, sa.ForeignKey("apg_runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("data", sa.JSON, nullable=False),
    )
    md.tables["apg_reports"].create(conn)


def _v6_stability(conn: sa.Connection) -> None:
    add_column(conn, "apg_runs", sa.Column("weak", sa.JSON))
    for name in ("choice_silhouette", "stability", "evenness"):
        add_column(conn, "apg_candidates", sa.Column(name, sa.Float))


def _v7_notifications(conn: sa.Connection) -> None:
    md = sa.MetaData()
    sa.Table("apg_runs", md, sa.Column("id", ID, primary_key=True))
    sa.Table(
        "apg_notifications",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", ID, sa.ForeignKey("apg_runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("target", sa.String(512), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("events", sa.JSON),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("http_status", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("seconds", sa.Float),
        sa.Column("sent_at", TIME, nullable=False),
        sa.Index("ix_apg_notifications_run", "run_id"),
    )
    md.tables["apg_notifications"].create(conn)


def _v8_web_sessions(conn: sa.Connection) -> None:
    md = sa.MetaData()
    sa.Table(
        "apg_web_sessions",
        md,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        sa.Index("ix_apg_web_sessions_expires", "expires_at"),
    )
    md.tables["apg_web_sessions"].create(conn)


def _v9_freshness(conn: sa.Connection) -> None:
    add_column(conn, "apg_persona_runs", sa.Column("freshness", sa.JSON))


MIGRATIONS: list[Migration] = [
    Migration(1, "runs, candidates, models, personas and narrative versions", _v1_core),
    Migration(2, "identity across runs: members, match and drift columns", _v2_identity),
    Migration(3, "LLM call records", _v3_llm_calls),
    Migration(4, "daemon: run reason, owner and trigger; locks", _v4_daemon),
    Migration(5, "report data: what report.html needs, with a sample of the matrix", _v5_reports),
    Migration(6, "selection: weak-structure reasons, candidate stability", _v6_stability),
    Migration(7, "notifications: webhook deliveries per run", _v7_notifications),
    Migration(8, "review-page sessions, so logging out ends them", _v8_web_sessions),
    Migration(9, "current numbers: each carried narrative's check per run", _v9_freshness),
]
LATEST = MIGRATIONS[-1].version

_VERSION_TABLE = "apg_schema_version"
_PG_LOCK = 0x61706701  # pg_advisory_xact_lock key: one migrator at a time


def _version_table() -> sa.Table:
    return sa.Table(
        _VERSION_TABLE,
        sa.MetaData(),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("applied_at", TIME, nullable=False),
    )


def current_version(conn: sa.Connection) -> int:
    """The schema version of the database (0: no apg tables yet)."""
    names = set(sa.inspect(conn).get_table_names())
    if _VERSION_TABLE not in names:
        clash = sorted(n for n in names if n.startswith("apg_"))
        if clash:
            raise StoreError(
                f"the database has apg tables ({', '.join(clash)}) but no {_VERSION_TABLE}; "
                "it was not created by apg. Point --db at an apg database or an empty one"
            )
        return 0
    found = conn.execute(sa.select(sa.func.max(_version_table().c.version))).scalar()
    return int(found or 0)


def migrate(conn: sa.Connection, target: int = LATEST) -> list[int]:
    """Apply the pending migrations up to ``target`` inside the caller's write transaction.

    Returns the versions applied. A database newer than this apg is an error, not a downgrade.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK})
    version = current_version(conn)
    if version > LATEST:
        raise StoreError(
            f"the database is at schema version {version} but this apg knows up to {LATEST}; "
            "upgrade apg (pip install -U apg) to use it"
        )
    table = _version_table()
    if version == 0:
        table.create(conn, checkfirst=True)
    applied = []
    for migration in MIGRATIONS:
        if version < migration.version <= target:
            migration.upgrade(conn)
            now = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
            conn.execute(
                table.insert().values(
                    version=migration.version, description=migration.description, applied_at=now
                )
            )
            applied.append(migration.version)
    return applied
