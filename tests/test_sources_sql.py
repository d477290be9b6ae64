"""The sql source against a real SQLite file and a real PostgreSQL server.

PostgreSQL: ``APG_TEST_POSTGRES_URL`` (default
``postgresql+psycopg://apg:apg@127.0.0.1:5432/apg_test``, which ``.ci/run`` creates). The
tests skip when no server answers, except in CI (``CI`` set), where that is a failure.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from pydantic import ValidationError
from sources_helpers import ctx, spec

from apg.config import parse_config
from apg.errors import SourceError
from apg.sources import load_sources, mask_tree

PG_DEFAULT = "postgresql+psycopg://apg:apg@127.0.0.1:5432/apg_test"
PG_URL = os.environ.get("APG_TEST_POSTGRES_URL", PG_DEFAULT)


@functools.cache
def _postgres_problem() -> str | None:
    try:
        engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        shown = sa.engine.make_url(PG_URL).render_as_string(hide_password=True)
        return (
            f"no PostgreSQL server reachable at {shown} ({type(exc).__name__}); set "
            "APG_TEST_POSTGRES_URL or start one as .ci/run does"
        )
    return None


@dataclass
class Database:
    name: str
    url: str  # what a config would say
    engine: sa.Engine
    table: str  # a fresh table name for this test


ROWS = [
    {"user_id": 1, "plan": "free", "spend": Decimal("10.50"), "seen": dt.datetime(2024, 1, 2)},
    {"user_id": 2, "plan": "pro", "spend": Decimal("99.00"), "seen": dt.datetime(2024, 2, 3)},
    {"user_id": 3, "plan": None, "spend": None, "seen": None},
]


def _fill(engine: sa.Engine, table: str) -> None:
    meta = sa.MetaData()
    t = sa.Table(
        table,
        meta,
        sa.Column("user_id", sa.Integer, primary_key=True),
        sa.Column("plan", sa.String(20)),
        sa.Column("spend", sa.Numeric(10, 2)),
        sa.Column("seen", sa.DateTime),
    )
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(t.insert(), ROWS)


def _postgres(table: str) -> Iterator[Database]:
    problem = _postgres_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    engine = sa.create_engine(PG_URL)
    _fill(engine, table)
    yield Database("postgres", PG_URL, engine, table)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP TABLE IF EXISTS "{table}"'))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """The same tests against both backends (a contract test)."""
    table = f"users_{uuid.uuid4().hex[:8]}"
    if request.param == "postgres":
        yield from _postgres(table)
        return
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    _fill(engine, table)
    yield Database("sqlite", "sqlite:///app.db", engine, table)  # relative to base_dir
    engine.dispose()


@pytest.fixture
def postgres() -> Iterator[Database]:
    yield from _postgres(f"users_{uuid.uuid4().hex[:8]}")


def read(db: Database, tmp_path: Path, **raw: object) -> pd.DataFrame:
    return spec({"kind": "sql", "url": db.url, **raw}).read(ctx(tmp_path))


def read_error(db: Database | None, tmp_path: Path, **raw: object) -> str:
    with pytest.raises(SourceError) as info:
        spec({"kind": "sql", **({"url": db.url} if db else {}), **raw}).read(ctx(tmp_path))
    return str(info.value)


def test_sql_reads_a_whole_table(database: Database, tmp_path: Path):
    frame = read(database, tmp_path, table=database.table)
    assert list(frame.columns) == ["user_id", "plan", "spend", "seen"]
    assert frame["user_id"].tolist() == [1, 2, 3]
    assert frame["spend"].tolist()[:2] == [10.5, 99.0]  # DECIMAL -> float
    assert frame["spend"].isna().tolist() == [False, False, True]
    if database.name == "postgres":  # SQLite stores timestamps as text
        assert frame["seen"].tolist()[:2] == [
            pd.Timestamp("2024-01-02"),
            pd.Timestamp("2024-02-03"),
        ]


def test_sql_query_with_bound_params(database: Database, tmp_path: Path):
    query = f"SELECT user_id, spend * 2 AS double_spend FROM {database.table} WHERE spend > :floor"
    frame = read(database, tmp_path, query=query, params={"floor": 20})
    assert frame.to_dict("list") == {"user_id": [2], "double_spend": [198.0]}


def test_sql_missing_table_lists_tables(database: Database, tmp_path: Path):
    message = read_error(database, tmp_path, table="no_such_table")
    assert message.startswith("source #1 (sql): table 'no_such_table' not found; tables are ")
    assert repr(database.table) in message


def test_sql_query_error_shows_driver_message(database: Database, tmp_path: Path):
    message = read_error(database, tmp_path, query=f"SELECT nope FROM {database.table}")
    expected = {
        "sqlite": "source #1 (sql): query failed: no such column: nope; check the SQL",
        "postgres": 'source #1 (sql): query failed: column "nope" does not exist LINE 1: SELECT '
        f"nope FROM {database.table} ^; check the SQL",
    }
    assert message == expected[database.name]


def test_sql_empty_result_is_an_error(database: Database, tmp_path: Path):
    message = read_error(database, tmp_path, query=f"SELECT * FROM {database.table} WHERE 1 = 0")
    assert message == "source #1 (sql): the query returned no rows"


@pytest.mark.postgres
def test_sql_postgres_schema_qualified_table(postgres: Database, tmp_path: Path):
    assert len(read(postgres, tmp_path, table=f"public.{postgres.table}")) == 3


@pytest.mark.postgres
def test_sql_postgres_wrong_password_is_masked(postgres: Database, tmp_path: Path):
    url = sa.engine.make_url(PG_URL).set(password="Wr0ng-p@ss")
    raw_url = url.render_as_string(hide_password=False)
    message = read_error(None, tmp_path, url=raw_url, table=postgres.table)
    shown = url.render_as_string(hide_password=True)
    assert message.startswith(f"source #1 (sql): cannot connect to {shown}: connection failed: ")
    assert f'password authentication failed for user "{url.username}"' in message
    assert message.endswith("; check the host, port, database name and credentials")
    assert "Wr0ng" not in message and "p%40ss" not in message


@pytest.mark.postgres
def test_sql_postgres_unreachable_port(postgres: Database, tmp_path: Path):
    url = sa.engine.make_url(PG_URL).set(host="127.0.0.1", port=1)
    message = read_error(
        None, tmp_path, url=url.render_as_string(hide_password=False), table="x", connect_timeout=2
    )
    assert message.startswith(
        f"source #1 (sql): cannot connect to {url.render_as_string(hide_password=True)}: "
    )
    assert "Connection refused" in message
    assert ":apg@" not in message


def test_sql_missing_sqlite_file_is_not_created(tmp_path: Path):
    message = read_error(None, tmp_path, url="sqlite:///missing.db", table="users")
    assert message == (
        f"source #1 (sql): SQLite database file '{tmp_path / 'missing.db'}' does not exist; "
        "check the url"
    )
    assert not (tmp_path / "missing.db").exists()


def test_sql_invalid_url(tmp_path: Path):
    message = read_error(None, tmp_path, url="postgres//user:hunter22@host/db", table="t")
    assert message == (
        "source #1 (sql): url 'postgres//user:***@host/db' is not an SQLAlchemy URL; write it "
        "like 'sqlite:///users.db' or 'postgresql+psycopg://user@host:5432/db' (a password goes "
        "after the user as ':${DB_PASSWORD}')"
    )


def test_sql_missing_driver_says_what_to_install(tmp_path: Path):
    pytest.importorskip("sqlalchemy")
    try:
        import pymysql  # noqa: F401

        pytest.skip("pymysql is installed here")
    except ImportError:
        pass
    message = read_error(None, tmp_path, url="mysql+pymysql://u:topsecret@127.0.0.1/db", table="t")
    assert message == (
        "source #1 (sql): the database driver for 'mysql+pymysql' is not installed (missing "
        "module 'pymysql'); install it with `pip install pymysql`"
    )


def test_sql_needs_query_or_table():
    with pytest.raises(ValidationError, match="give exactly one of `query`"):
        spec({"kind": "sql", "url": "sqlite:///x.db"})
    with pytest.raises(ValidationError, match="give exactly one of `query`"):
        spec({"kind": "sql", "url": "sqlite:///x.db", "query": "SELECT 1", "table": "t"})


def test_sql_config_env_password_never_reaches_messages_or_records(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    url = sa.engine.make_url(database.url)
    password = url.password or "unused-Pa55"
    monkeypatch.setenv("APG_TEST_DB_PASSWORD", password)
    templated = (
        url.set(password="PLACEHOLDER")
        .render_as_string(hide_password=False)
        .replace("PLACEHOLDER", "${APG_TEST_DB_PASSWORD}")
        if url.password
        else database.url
    )
    config = parse_config(
        {
            "sources": [
                {"kind": "sql", "url": templated, "table": database.table},
                {
                    "kind": "sql",
                    "url": templated,
                    "query": f"SELECT user_id, bad FROM {database.table}",
                },
            ],
            "id_column": "user_id",
            "features": {"behavioral": ["spend"]},
        },
        base_dir=tmp_path,
    )
    with pytest.raises(SourceError) as info:
        load_sources(config.sources, tmp_path, "user_id")
    assert str(info.value).startswith("source #2 (sql): query failed: ")
    if url.password:
        assert config.sources[0].url == database.url  # interpolated
        stored = str(mask_tree(config.model_dump(mode="json")))
        assert f":{password}@" not in stored and ":***@" in stored
