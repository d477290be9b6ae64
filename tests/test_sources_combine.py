"""Combining sources: joins, clashes, dedupe, fingerprints, `sources check` and example configs."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sources_helpers import ApiServer, Reply, Request, load, serve

from apg.config import load_config, parse_config
from apg.errors import SourceError
from apg.sources import fingerprint, load_sources, mask_tree
from apg.sources.check import check_sources

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "users.csv").write_text("user_id,age\n1,30\n2,40\n3,50\n")
    (tmp_path / "scores.csv").write_text("uid,score,age\n1,7,31\n3,9,51\n4,1,61\n")
    return tmp_path


def error_of(specs: list[dict], tmp_path: Path) -> str:
    with pytest.raises(SourceError) as info:
        load(specs, tmp_path)
    return str(info.value)


def test_combine_left_join_keeps_first_source_users(files: Path):
    frame = load(
        [
            {"kind": "file", "path": "users.csv"},
            {"kind": "file", "path": "scores.csv", "id": "uid", "rename": {"age": "age_2"}},
        ],
        files,
    )
    # Ids from text files stay text as written.
    assert frame["user_id"].tolist() == ["1", "2", "3"]
    assert frame["score"].tolist()[0] == 7 and np.isnan(frame["score"][1])


def test_combine_inner_join_keeps_common_users(files: Path):
    frame = load(
        [
            {"kind": "file", "path": "users.csv"},
            {
                "kind": "file",
                "path": "scores.csv",
                "id": "uid",
                "rename": {"age": "age_2"},
                "join": "inner",
            },
        ],
        files,
    )
    assert frame.to_dict("list") == {
        "user_id": ["1", "3"],
        "age": [30, 50],
        "score": [7, 9],
        "age_2": [31, 51],
    }


def test_combine_shared_column_names_both_sources(files: Path):
    message = error_of(
        [
            {"kind": "file", "path": "users.csv"},
            {"kind": "file", "path": "scores.csv", "id": "uid"},
        ],
        files,
    )
    assert message == (
        "source #2 (file scores.csv): column(s) 'age' also come from source #1 (file users.csv); "
        "give one of the two sources `rename: {age: age_2}` or drop the column"
    )


def test_combine_duplicate_ids_need_dedupe(tmp_path: Path):
    (tmp_path / "u.csv").write_text("user_id,x\n1,a\n1,b\n2,c\n")
    assert error_of([{"kind": "file", "path": "u.csv"}], tmp_path) == (
        "source #1 (file u.csv): 1 duplicate id(s) in column 'user_id', e.g. '1'; remove them or "
        "set `dedupe: first|last`"
    )
    frame = load([{"kind": "file", "path": "u.csv", "dedupe": "last"}], tmp_path)
    assert frame.to_dict("list") == {"user_id": ["1", "2"], "x": ["b", "c"]}


def test_combine_text_ids_that_are_numbers_join_numeric_ids(tmp_path: Path):
    (tmp_path / "a.jsonl").write_text('{"user_id": 1, "x": "a"}\n{"user_id": 2, "x": "b"}\n')
    (tmp_path / "b.csv").write_text("user_id,y\n1,5\n2,6\n")
    frame = load([{"kind": "file", "path": "a.jsonl"}, {"kind": "file", "path": "b.csv"}], tmp_path)
    assert frame["y"].tolist() == [5, 6]
    reverse = load(
        [{"kind": "file", "path": "b.csv"}, {"kind": "file", "path": "a.jsonl"}], tmp_path
    )
    assert reverse.to_dict("list") == {"user_id": [1, 2], "y": [5, 6], "x": ["a", "b"]}


def test_combine_incompatible_id_types_are_an_error(tmp_path: Path):
    (tmp_path / "a.jsonl").write_text('{"user_id": 1, "x": "a"}\n')
    (tmp_path / "b.csv").write_text("user_id,y\nu1,5\n")
    assert error_of(
        [{"kind": "file", "path": "a.jsonl"}, {"kind": "file", "path": "b.csv"}], tmp_path
    ) == (
        "source #2 (file b.csv): its ids in 'user_id' are str (e.g. 'u1') but source #1 (file "
        "a.jsonl) has int64 ids (e.g. '1'); make them the same type (for a file, `options: {dtype: "
        "{user_id: str}}` reads ids as text)"
    )


def test_combine_inner_join_without_overlap_is_an_error(files: Path):
    (files / "other.csv").write_text("user_id,z\n9,1\n")
    assert error_of(
        [
            {"kind": "file", "path": "users.csv"},
            {"kind": "file", "path": "other.csv", "join": "inner"},
        ],
        files,
    ) == (
        "source #2 (file other.csv): joining on 'user_id' left no users: no id of this source "
        "matches the sources before it (e.g. '9'); check the ids"
    )


def test_combine_file_glob_concatenates_in_name_order(tmp_path: Path):
    (tmp_path / "exports").mkdir()
    pd.DataFrame({"user_id": [3, 4], "x": [0.3, 0.4]}).to_parquet(tmp_path / "exports/b.parquet")
    pd.DataFrame({"user_id": [1, 2], "x": [0.1, 0.2]}).to_parquet(tmp_path / "exports/a.parquet")
    frame = load([{"kind": "file", "path": "exports/*.parquet"}], tmp_path)
    assert frame["user_id"].tolist() == [1, 2, 3, 4]
    assert error_of([{"kind": "file", "path": "exports/*.csv"}], tmp_path) == (
        f"source #1 (file exports/*.csv): no file matches '{tmp_path / 'exports/*.csv'}'; check "
        "the path pattern"
    )


def test_combine_table_records_counts_labels_and_fingerprint(files: Path):
    specs = [
        {"kind": "file", "path": "users.csv"},
        {"kind": "file", "path": "scores.csv", "id": "uid", "rename": {"age": "age_2"}},
    ]
    config = parse_config(
        {"sources": specs, "id_column": "user_id", "features": {"behavioral": ["age"]}},
        base_dir=files,
    )
    table = load_sources(config.sources, files, "user_id")
    assert table.rows_per_source == [3, 3]
    assert table.labels == ["source #1 (file users.csv)", "source #2 (file scores.csv)"]
    assert table.columns_per_source == [["age"], ["score", "age_2"]]
    assert table.fingerprint == fingerprint(table.frame)
    # an unchanged refresh gives the same fingerprint; a changed value does not
    assert load_sources(config.sources, files, "user_id").fingerprint == table.fingerprint
    (files / "scores.csv").write_text("uid,score,age\n1,8,31\n3,9,51\n4,1,61\n")
    assert load_sources(config.sources, files, "user_id").fingerprint != table.fingerprint


def test_fingerprint_ignores_row_order_column_order_and_dtype_noise():
    base = pd.DataFrame(
        {
            "user_id": [1, 2, 3],
            "n": [5, 6, 7],
            "x": [0.5, None, 2.0],
            "s": ["a", None, "c"],
            "t": pd.to_datetime(["2024-01-01", None, "2024-03-01"]),
        }
    )
    noisy = base.iloc[[2, 0, 1]][["t", "s", "x", "n", "user_id"]].copy()
    noisy["n"] = noisy["n"].astype("Int64")
    noisy["user_id"] = noisy["user_id"].astype("float64")
    noisy["s"] = noisy["s"].astype(object)
    noisy["t"] = noisy["t"].astype("datetime64[ns]")
    assert fingerprint(noisy) == fingerprint(base)
    assert fingerprint(base).startswith("sha256:") and len(fingerprint(base)) == 71


@pytest.mark.parametrize(
    "change",
    [
        lambda f: f.assign(n=[5, 6, 8]),
        lambda f: f.assign(s=["a", "b", "c"]),
        lambda f: f.assign(n=f["n"].astype(str)),  # 5 and "5" differ
        lambda f: f.rename(columns={"n": "m"}),
        lambda f: f.iloc[:2],
        lambda f: f.assign(x=[0.5, None, 2.0000001]),
    ],
)
def test_fingerprint_changes_with_content(change):
    base = pd.DataFrame(
        {"user_id": [1, 2, 3], "n": [5, 6, 7], "s": ["a", None, "c"], "x": [0.5, None, 2.0]}
    )
    assert fingerprint(change(base)) != fingerprint(base)


@given(
    st.lists(
        st.tuples(
            st.integers(-(10**12), 10**12),
            st.floats(allow_nan=True, allow_infinity=False),
            st.text(max_size=4),
        ),
        min_size=1,
        max_size=30,
        unique_by=lambda r: r[0],
    ),
    st.randoms(),
)
@settings(max_examples=50, deadline=None)
def test_fingerprint_is_stable_under_any_row_permutation(rows, rnd):
    frame = pd.DataFrame(rows, columns=["user_id", "x", "s"])
    order = list(range(len(frame)))
    rnd.shuffle(order)
    assert fingerprint(frame.iloc[order]) == fingerprint(frame)


def test_check_sources_report(files: Path):
    specs = [
        {"kind": "file", "path": "users.csv"},
        {"kind": "file", "path": "scores.csv", "id": "uid", "rename": {"age": "age_2"}},
    ]
    config = parse_config(
        {"sources": specs, "id_column": "user_id", "features": {"behavioral": ["age"]}},
        base_dir=files,
    )
    report = check_sources(config.sources, config.base_dir, config.id_column)
    table = load_sources(config.sources, files, "user_id")
    assert report == (
        "sources:\n"
        "  source #1 (file users.csv)   3 rows, 1 columns\n"
        "  source #2 (file scores.csv)  3 rows, 2 columns, joined left\n"
        "joined table: 3 rows x 4 columns (id column 'user_id')\n"
        "  column   type     missing  source\n"
        "  user_id  str         0.0%  (id)\n"
        "  age      int64       0.0%  source #1 (file users.csv)\n"
        "  score    float64    33.3%  source #2 (file scores.csv)\n"
        "  age_2    float64    33.3%  source #2 (file scores.csv)\n"
        f"fingerprint: {table.fingerprint}\n"
    )


def test_combine_sql_http_and_events_in_one_table(tmp_path: Path):
    with sqlite3.connect(tmp_path / "app.db") as db:
        db.execute("CREATE TABLE users (id INTEGER, age INTEGER)")
        db.executemany("INSERT INTO users VALUES (?, ?)", [(1, 30), (2, 40), (3, 50)])
    (tmp_path / "log.csv").write_text("who,at\n1,2024-01-01\n1,2024-01-02\n2,2024-01-02\n")
    with ApiServer() as server:
        url = server.route("/s", lambda r: Reply(body={"items": [{"user_id": 2, "nps": 9}]}))
        frame = load(
            [
                {"kind": "sql", "url": "sqlite:///app.db", "table": "users", "id": "id"},
                {"kind": "http", "url": url, "records": "items"},
                {
                    "kind": "events",
                    "from": {"kind": "file", "path": "log.csv"},
                    "user": "who",
                    "time": "at",
                    "features": {"events": {"count": True}},
                    "join": "inner",
                },
            ],
            tmp_path,
        )
    assert frame["user_id"].tolist() == [1, 2]  # user 3 has no events: the inner join drops it
    assert frame["age"].tolist() == [30, 40]
    assert frame["nps"].isna().tolist() == [True, False] and frame["nps"][1] == 9
    assert frame["events"].tolist() == [2, 1]


# -- example configs -----------------------------------------------------------------------


@pytest.fixture
def example_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APG_DB_PASSWORD", "pg-Secret-42")
    monkeypatch.setenv("APG_DB_HOST", "db.internal")
    monkeypatch.setenv("APG_API_TOKEN", "tok-Secret-42")


@pytest.mark.parametrize("name", ["sql.yaml", "http.yaml", "events.yaml"])
def test_example_configs_are_valid_and_mask_secrets(name: str, example_env: None):
    config = load_config(CONFIGS / name)
    stored = str(mask_tree(config.model_dump(mode="json", exclude={"base_dir"})))
    assert "Secret-42" not in stored


def test_example_sql_config_masks_password_in_url(example_env: None):
    config = load_config(CONFIGS / "sql.yaml")
    assert config.sources[0].url == (
        "postgresql+psycopg://analytics:pg-Secret-42@db.internal:5432/warehouse"
    )
    assert mask_tree({"url": config.sources[0].url}) == {
        "url": "postgresql+psycopg://analytics:***@db.internal:5432/warehouse"
    }


@pytest.fixture
def api() -> Iterator[ApiServer]:
    yield from serve()


def test_example_http_config_runs_against_a_server_shaped_like_it(
    api: ApiServer, example_env: None, tmp_path: Path
):
    def users(request: Request) -> Reply:
        if request.headers.get("authorization") != "Bearer tok-Secret-42":
            return Reply(401, "no")
        n = int(request.query.get("cursor", "0"))
        user = {
            "user_id": n + 1,
            "sessions_per_week": 2,
            "nps": 8,
            "country": "DE",
            "plan": {"tier": n},
            "activity": {"logins_30d": 3 * n},
        }
        return Reply(
            body={"data": {"users": [user]}, "meta": {"next_cursor": str(n + 1) if n < 2 else None}}
        )

    config = load_config(CONFIGS / "http.yaml")
    source = config.sources[0].model_copy(
        update={"url": api.route("/v1/users", users), "backoff": 0.01}
    )
    frame = load_sources([source], tmp_path, config.id_column).frame
    assert frame["user_id"].tolist() == [1, 2, 3]
    assert frame["logins_per_month"].tolist() == [0, 3, 6]
    assert {"plan_tier", "country", "nps"} <= set(frame.columns)
    assert api.requests[0].query == {"status": "active", "limit": "200"}


def test_example_events_config_runs_on_an_orders_log(tmp_path: Path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "orders.csv").write_text(
        "InvoiceNo,StockCode,CustomerID,InvoiceDate,Quantity,UnitPrice,Country\n"
        "536365,A,17850,01/12/2010 08:26,6,2.55,United Kingdom\n"
        "536366,POST,17850,01/12/2011 08:28,1,18.0,United Kingdom\n"
        "536367,B,13047,09/12/2011 08:34,32,1.69,France\n"
        "536368,B,13047,09/12/2011 09:00,-2,1.69,France\n"
        "536369,C,,09/12/2011 09:00,5,1.0,France\n"
    )
    (data / "customers.csv").write_text("customer_id,age_band\n17850,30-39\n13047,40-49\n1,50+\n")
    (tmp_path / "configs").mkdir()
    config = load_config(CONFIGS / "events.yaml")
    frame = load_sources(config.sources, tmp_path / "configs", config.id_column).frame
    # as_of 2011-12-10 00:00 with a 365-day window drops 17850's 2010 order; the return
    # (Quantity -2) is filtered; the order without a CustomerID is skipped.
    expected = pd.DataFrame(
        {
            "CustomerID": ["13047", "17850"],
            "frequency": [1, 1],
            "monetary": [32 * 1.69, 18.0],
            "recency_days": [
                (24 * 60 - (8 * 60 + 34)) / 1440,
                8 + (24 * 60 - (8 * 60 + 28)) / 1440,
            ],
            "tenure_days": [(24 * 60 - (8 * 60 + 34)) / 1440, 8 + (24 * 60 - (8 * 60 + 28)) / 1440],
            "active_days": [1, 1],
            "avg_basket": [32 * 1.69, 18.0],
            "returns": [0, 1],
            "country": ["France", "United Kingdom"],
            "age_band": ["40-49", "30-39"],
        }
    )
    pd.testing.assert_frame_equal(frame, expected, check_dtype=False)
    # Ids from text files stay as written (not 13047.0 because of the blank id).
    assert frame["CustomerID"].tolist() == ["13047", "17850"]
