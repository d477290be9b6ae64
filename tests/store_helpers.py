"""Shared helpers for the store, review, identity, assign and CLI-store tests.

Databases are real: a SQLite file in the test's tmp dir, and PostgreSQL when
``APG_TEST_POSTGRES_URL`` names a server (each test gets its own schema, dropped afterwards).
Data are well separated Gaussian blobs whose segments the tests move, split, add or remove.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from apg.config import Config, parse_config
from apg.sources import SourceTable
from apg.store import Store
from apg.store.runner import StoredRun, run_with_store

PG_ENV = "APG_TEST_POSTGRES_URL"
FEATURES = ["f1", "f2", "f3", "f4"]
# Segment centres, 10 standard deviations apart.
CENTRES = {
    "A": [0.0, 0.0, 0.0, 0.0],
    "B": [10.0, 0.0, 0.0, 0.0],
    "C": [0.0, 10.0, 0.0, 0.0],
    "D": [0.0, 0.0, 10.0, 0.0],
}
FAR = [0.0, 0.0, 0.0, 10.0]  # where a new or split-off segment appears


@functools.cache
def postgres_problem() -> str | None:
    url = os.environ.get(PG_ENV)
    if not url:
        return f"{PG_ENV} is not set; set it to a PostgreSQL URL (as .ci/run does) to run these"
    try:
        engine = sa.create_engine(url, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        shown = sa.make_url(url).render_as_string(hide_password=True)
        return f"no PostgreSQL server reachable at {shown} ({type(exc).__name__})"
    return None


@contextmanager
def postgres_url() -> Iterator[str]:
    """A URL whose search_path is a fresh schema, dropped afterwards."""
    problem = postgres_problem()
    if problem:
        if os.environ.get("CI") and os.environ.get(PG_ENV):
            pytest.fail(problem)
        pytest.skip(problem)
    base = os.environ[PG_ENV]
    schema = f"apg_t_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    url = sa.make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The same test against a SQLite file and a PostgreSQL schema."""
    if request.param == "postgres":
        with postgres_url() as url:
            yield url
        return
    yield f"sqlite:///{tmp_path / 'apg.db'}"


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    with Store(db_url) as s:
        yield s


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    """For tests of logic above SQL, where one backend is enough."""
    with Store(f"sqlite:///{tmp_path / 'apg.db'}") as s:
        yield s


def blobs(
    sizes: dict[str, int] | None = None,
    *,
    seed: int = 0,
    prefix: str = "u",
    centres: dict[str, list[float]] | None = None,
) -> pd.DataFrame:
    """Users in segments (``segment`` column) around ``centres``, unit spread, ids
    ``<prefix><segment><n>`` so the same segment and number give the same id."""
    centres = centres or CENTRES
    sizes = sizes or {k: 150 for k in centres}
    rng = np.random.default_rng(seed)
    parts = []
    for name, n in sizes.items():
        values = rng.normal(0.0, 1.0, size=(n, len(FEATURES))) + np.asarray(centres[name])
        part = pd.DataFrame(values, columns=FEATURES)
        part.insert(0, "user_id", [f"{prefix}{name}{i:04d}" for i in range(n)])
        part["segment"] = name
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def raw_config(algorithm: str = "kmeans", **search: Any) -> dict[str, Any]:
    """The config of the tests as YAML would give it: one algorithm, small grids."""
    grids: dict[str, Any] = {"kmeans": None, "agglomerative": None, "dbscan": None}
    grids[algorithm] = {
        "kmeans": {"k": [2, 6], "n_init": 4},
        "agglomerative": {"k": [2, 6], "linkage": ["ward"]},
        "dbscan": {"eps": "auto", "min_samples": [5]},
    }[algorithm]
    raw = {
        "sources": [{"kind": "file", "path": "unused.csv"}],
        "id_column": "user_id",
        "features": {
            "behavioral": FEATURES[:3],
            "attitudinal": FEATURES[3:],
            "demographic": ["segment"],
        },
        # The planted segments are exact only on the raw scale: a mixture of far-apart
        # segments is skewed, and these tests are about the store, not the transforms.
        "preprocessing": {"transform": "none"},
        "search": {**grids, **search},
    }
    return raw


def config(algorithm: str = "kmeans", **search: Any) -> Config:
    return parse_config(raw_config(algorithm, **search), "test")


def run(store: Store, frame: pd.DataFrame, cfg: Config | None = None) -> StoredRun:
    return run_with_store(cfg or config(), store, table=SourceTable(frame=frame.copy()))


def segment_of(result: StoredRun) -> dict[str, str]:
    """persona id -> the segment most of its members come from."""
    frame = result.result.frame
    out = {}
    for p in result.result.personas:
        members = frame.raw["segment"][result.result.labels == p.cluster]
        out[p.persona_id] = str(members.mode().iloc[0])
    return out


def status_of(result: StoredRun) -> dict[str, str]:
    return {o.persona_id: o.status for o in result.plan.outcomes}
