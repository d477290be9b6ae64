"""Schema versions: an older database upgrades in place, keeping its runs and reviews."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
import store_helpers as h

from apg.errors import StoreError
from apg.store import Store
from apg.store.migrations import LATEST, MIGRATIONS, current_version, migrate

db_url = h.db_url

V1_PROFILE = {
    "persona_id": "P-0ld1",
    "cluster": 0,
    "size": 150,
    "share": 0.25,
    "centroid": {"f1": 10.0, "f2": 0.0, "f3": 0.0, "f4": 0.0},
    "categories": {},
    "contrasts": [],
    "demographics": {},
    "representatives": [],
    "atypical": {"count": 0, "ids": []},
}
V1_NARRATIVE = {
    "name": "Old Timer",
    "summary": "Written by apg 0.0.",
    "goals": [],
    "frustrations": [],
}


def _make_v1_database(url: str) -> None:
    """A database as the first schema version left it, with one reviewed persona."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        assert migrate(conn, target=1) == [1]
        conn.execute(
            sa.text(
                "INSERT INTO apg_runs (id, started_at, finished_at, status, apg_version, "
                "rows_read, rows_used) VALUES ('run-old', '2024-01-01T03:00:00.000000Z', "
                "'2024-01-01T03:01:00.000000Z', 'succeeded', '0.0.1', 600, 600)"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO apg_personas (id, created_run_id, created_at) "
                "VALUES ('P-0ld1', 'run-old', '2024-01-01T03:01:00.000000Z')"
            )
        )
        persona_runs = sa.table(
            "apg_persona_runs",
            sa.column("profile", sa.JSON),
            *(
                sa.column(c)
                for c in ("run_id", "persona_id", "cluster", "rank", "size", "share", "status")
            ),
        )
        conn.execute(
            persona_runs.insert().values(
                run_id="run-old",
                persona_id="P-0ld1",
                cluster=0,
                rank=1,
                size=150,
                share=0.25,
                status="new",
                profile=V1_PROFILE,
            )
        )
        narratives = sa.table(
            "apg_narratives",
            sa.column("body", sa.JSON),
            *(
                sa.column(c)
                for c in (
                    "persona_id",
                    "version",
                    "run_id",
                    "origin",
                    "status",
                    "created_by",
                    "created_at",
                    "reviewed_by",
                    "reviewed_at",
                    "review_note",
                )
            ),
        )
        conn.execute(
            narratives.insert().values(
                persona_id="P-0ld1",
                version=1,
                run_id="run-old",
                origin="generated",
                body=V1_NARRATIVE,
                status="approved",
                created_by="apg/offline",
                created_at="2024-01-01T03:01:00.000000Z",
                reviewed_by="ana",
                reviewed_at="2024-01-02T09:00:00.000000Z",
                review_note="ok",
            )
        )
    engine.dispose()


def test_migrations_are_numbered_in_order() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, LATEST + 1))


def test_store_upgrades_v1_database_in_place(db_url: str) -> None:
    _make_v1_database(db_url)
    with Store(db_url) as store:
        assert store.schema_version == LATEST
        (run,) = store.runs()
        assert run["id"] == "run-old" and run["rows_used"] == 600
        persona = store.persona("P-0ld1")
        assert persona["narrative"]["body"]["name"] == "Old Timer"
        assert persona["review"] == "approved"
        assert persona["history"][0]["drift"] is None  # a v2 column, empty for old rows
        with store.read() as conn:
            versions = [
                r.version
                for r in conn.execute(
                    sa.text("SELECT version FROM apg_schema_version ORDER BY version")
                )
            ]
        assert versions == list(range(1, LATEST + 1))


def test_upgraded_database_continues_identity_by_centroid(db_url: str) -> None:
    """The old run has no member ids (v2 added them): matching falls back to centroids."""
    _make_v1_database(db_url)
    with Store(db_url) as store:
        stored = h.run(store, h.blobs())
        by_segment = {seg: pid for pid, seg in h.segment_of(stored).items()}
        assert stored.plan.method == "centroid"
        assert by_segment["B"] == "P-0ld1"  # the old persona sat at segment B's centre
        assert h.status_of(stored)["P-0ld1"] == "continuing"
        # Its approved narrative is carried over unchanged.
        b = next(p for p in stored.result.personas if p.persona_id == "P-0ld1")
        assert b.narrative is not None and b.narrative.name == "Old Timer"


def test_store_open_is_idempotent(db_url: str) -> None:
    with Store(db_url) as store:
        first = store.schema_version
    with Store(db_url) as store, store.read() as conn:
        assert store.schema_version == first == LATEST
        rows = conn.execute(sa.text("SELECT count(*) FROM apg_schema_version")).scalar()
        assert rows == LATEST


def test_store_refuses_database_newer_than_apg(db_url: str) -> None:
    Store(db_url).close()
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO apg_schema_version (version, description, applied_at)"
                " VALUES (:v, 'from the future', 'x')"
            ),
            {"v": LATEST + 1},
        )
    engine.dispose()
    with pytest.raises(
        StoreError,
        match=rf"schema version {LATEST + 1} but this apg knows up "
        rf"to {LATEST}; upgrade apg",
    ):
        Store(db_url)


def test_store_refuses_apg_tables_without_version(db_url: str) -> None:
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE apg_runs (id VARCHAR(10))"))
        with pytest.raises(StoreError, match="not created by apg"):
            current_version(conn)
    engine.dispose()
    with pytest.raises(StoreError, match=r"apg tables \(apg_runs\) but no apg_schema_version"):
        Store(db_url)
