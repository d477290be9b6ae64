"""The store: opening, URL precedence, what a run records, one transaction per run."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
import store_helpers as h

from apg.config import parse_config
from apg.errors import NotFoundError, SearchError, StoreError
from apg.search.model_io import StoredModel
from apg.store import Store, locks, open_store, resolve_url
from apg.store import schema as t
from apg.store.record import masked_config

db_url = h.db_url
store = h.store
sqlite_store = h.sqlite_store


def _count(s: Store, table: sa.Table, **where: object) -> int:
    query = sa.select(sa.func.count()).select_from(table)
    for k, v in where.items():
        query = query.where(table.c[k] == v)
    with s.read() as conn:
        return int(conn.execute(query).scalar() or 0)


def test_resolve_url_precedence_option_env_config_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_url() == "sqlite:///apg.db"
    assert resolve_url(None, "sqlite:///from-config.db") == "sqlite:///from-config.db"
    monkeypatch.setenv("APG_DATABASE_URL", "sqlite:///from-env.db")
    assert resolve_url(None, "sqlite:///from-config.db") == "sqlite:///from-env.db"
    assert resolve_url("sqlite:///from-option.db", "x") == "sqlite:///from-option.db"


def test_resolve_url_bare_path_is_sqlite_file() -> None:
    assert resolve_url("data/personas.db") == "sqlite:///data/personas.db"


def test_open_store_creates_default_file_in_working_folder(tmp_path: Path) -> None:
    with open_store() as s:
        assert s.schema_version >= 3
    assert (tmp_path / "apg.db").is_file()


def test_open_store_without_create_refuses_missing_file(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"no database at 'missing.db'.*apg run"):
        open_store("missing.db", create=False)
    assert not (tmp_path / "missing.db").exists()


def test_open_store_invalid_url_says_what_urls_look_like() -> None:
    with pytest.raises(StoreError, match=r"not valid; use e\.g\. sqlite:///apg\.db"):
        open_store("postgresql+psycopg://u:p@host:notaport/db")


def test_sqlite_store_uses_wal_and_busy_timeout(tmp_path: Path) -> None:
    with Store(f"sqlite:///{tmp_path / 'w.db'}") as s, s.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_store_schema_matches_migrated_database(store: Store) -> None:
    with store.read() as conn:
        inspector = sa.inspect(conn)
        for table in t.metadata.sorted_tables:
            found = {c["name"] for c in inspector.get_columns(table.name)}
            assert found == {c.name for c in table.columns}, table.name


def test_record_run_writes_run_candidates_model_personas_members(store: Store) -> None:
    frame = h.blobs()
    stored = h.run(store, frame)
    run_id = stored.run_id
    assert run_id.startswith("run-") and len(run_id) == len("run-20250101-030000-abcd")
    run = store.run(run_id)
    assert run["status"] == "succeeded"
    assert run["rows_used"] == run["rows_read"] == 600
    assert run["algorithm"] == "kmeans" and run["params"] == {"k": 4}
    assert run["fingerprint"] == stored.result.table.fingerprint
    assert run["started_at"] < run["finished_at"]
    # Every candidate with its scores, and exactly one selected.
    assert len(run["candidates"]) == 5
    assert [c["params"]["k"] for c in run["candidates"]] == [2, 3, 4, 5, 6]
    assert sum(c["selected"] for c in run["candidates"]) == 1
    assert all(c["silhouette"] is not None for c in run["candidates"])
    # Personas with profiles and narratives (a draft per new persona).
    personas = store.personas(run_id)
    assert sorted(p["size"] for p in personas) == [150, 150, 150, 150]
    assert all(p["status"] == "new" and p["review"] == "draft" and p["name"] for p in personas)
    assert all(p["profile"]["centroid"].keys() == set(h.FEATURES) for p in personas)
    # One member row per clustered user; the model reproduces the labels.
    assert _count(store, t.members, run_id=run_id) == 600
    with store.read() as conn:
        doc = conn.execute(sa.select(t.models.c.document)).scalar_one()
    model = StoredModel.from_json(doc)
    assert np.array_equal(model.assign(frame), stored.result.labels)


def test_record_run_masks_secrets_in_config() -> None:
    cfg = parse_config(
        {
            "sources": [
                {
                    "kind": "sql",
                    "url": "postgresql://reader:s3cretpw@db.example/app",
                    "query": "select * from users",
                }
            ],
            "id_column": "user_id",
            "features": {"behavioral": ["a"]},
        }
    )
    stored = json.dumps(masked_config(cfg))
    assert "s3cretpw" not in stored
    assert "reader:***@db.example" in stored


def test_record_run_is_one_transaction_failure_leaves_nothing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from apg.store import record

    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(record, "_llm_calls", boom)  # the last write of a run
    with pytest.raises(RuntimeError, match="disk on fire"):
        h.run(store, h.blobs())
    for table in (t.candidates, t.models, t.personas, t.persona_runs, t.narratives, t.members):
        assert _count(store, table) == 0, table.name
    # The failure itself is recorded as a failed run without personas.
    runs = store.runs()
    assert [r["status"] for r in runs] == ["failed"]


def done_pid(store: Store) -> int:
    with store.read() as conn:
        return int(conn.execute(sa.select(t.runs.c.pid)).scalar_one())


def test_record_run_crash_mid_transaction_leaves_no_half_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import store_helpers as h
        from apg.store import Store, record
        def crash(*a, **k):
            os._exit(3)  # the process dies with the transaction open
        record._llm_calls = crash
        h.run(Store({url!r}), h.blobs())
    """)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 3, done.stderr
    with Store(url) as s:
        # Only the `running` row committed at the start is left; none of the run's content.
        # Readers already show it interrupted (the process is gone) without recording it.
        (shown,) = s.runs()
        assert (shown["status"], shown["reason"]) == (
            "interrupted",
            f"pid {done_pid(s)} on host {locks.HOST} is gone (killed or crashed) "
            "(not yet recorded)",
        )
        with s.read() as conn:
            assert conn.execute(sa.select(t.runs.c.status)).scalars().all() == ["running"]
        for table in (t.candidates, t.personas, t.persona_runs, t.narratives, t.members):
            assert _count(s, table) == 0, table.name
        # The next run finds the dead process's run and marks it interrupted.
        h.run(s, h.blobs())
        assert [r["status"] for r in s.runs()] == ["succeeded", "interrupted"]


def test_failed_run_is_recorded_with_its_error(store: Store) -> None:
    cfg = h.config(min_cluster_share=0.45)  # no candidate can pass
    with pytest.raises(SearchError):
        h.run(store, h.blobs(), cfg)
    (run,) = store.runs()
    assert run["status"] == "failed" and run["finished_at"]
    detail = store.run(run["id"])
    assert "NoEligibleError: none of the" in detail["error"]
    assert detail["personas"] == [] and detail["candidates"] == []
    with pytest.raises(NotFoundError, match="no successful run yet"):
        store.run("latest")


def test_runs_latest_is_newest_successful_run(store: Store) -> None:
    first = h.run(store, h.blobs())
    second = h.run(store, h.blobs())
    assert store.run()["id"] == second.run_id
    assert [r["id"] for r in store.runs()] == [second.run_id, first.run_id]


def test_unknown_run_id_lists_close_matches(store: Store) -> None:
    stored = h.run(store, h.blobs())
    typo = stored.run_id[:-1] + ("0" if stored.run_id[-1] != "0" else "1")
    with pytest.raises(NotFoundError, match=rf"no run '{typo}'; did you mean '{stored.run_id}'"):
        store.run(typo)


def test_unknown_persona_id_lists_close_matches(store: Store) -> None:
    stored = h.run(store, h.blobs())
    pid = stored.result.personas[0].persona_id
    typo = pid[:-2] + pid[-1] + pid[-2]
    if typo == pid:
        typo = pid[:-1] + "z"
    with pytest.raises(NotFoundError, match=rf"no persona '{typo}'; did you mean '{pid}'"):
        store.persona(typo)
    with pytest.raises(NotFoundError, match="known personas"):
        store.persona("nothing-like-it")


def test_record_run_stores_llm_calls_and_rerun_makes_none(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fake_openai import FakeOpenAI, json_reply

    reply = {"name": "Blob dweller", "summary": "A segment.", "goals": [], "frustrations": []}
    cfg = h.config()
    cfg.narration = cfg.narration.model_copy(
        update={
            "client": "openai",
            "model": "fake-model",
            "max_retries": 0,
            "max_reasks": 0,
            "timeout": 5.0,
            "concurrency": 1,
        }
    )
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-key")
    with FakeOpenAI(lambda _req: json_reply(reply)) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        week1 = h.run(sqlite_store, h.blobs(), cfg)
        week2 = h.run(sqlite_store, h.blobs(), cfg)
        asked = len(server.requests)
    calls = week1.result.llm_calls
    assert len(calls) == asked >= 4  # at least one call per persona, all in week 1
    assert week2.result.llm_calls == []  # continuing personas are not narrated again
    with sqlite_store.read() as conn:
        rows = conn.execute(sa.select(t.llm_calls).order_by(t.llm_calls.c.id)).all()
    assert [r.run_id for r in rows] == [week1.run_id] * len(calls)
    assert [r.record for r in rows] == [c.model_dump(mode="json") for c in calls]  # type: ignore[attr-defined]
    assert {r.persona_id for r in rows} == {p.persona_id for p in week1.result.personas}
    assert sqlite_store.run(week1.run_id)["llm_calls"] == len(calls)
