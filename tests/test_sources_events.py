"""The events source: per-user aggregations checked against hand-computed and pandas values."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from sources_helpers import ctx, spec

from apg.errors import SourceError

ORDERS = """\
InvoiceNo,CustomerID,InvoiceDate,Quantity,UnitPrice,Country,event
A1,u1,2011-12-01 10:00,2,5.0,UK,buy
A1,u1,2011-12-01 10:00,1,10.0,UK,buy
A2,u1,2011-12-05 12:00,-1,5.0,UK,return
A3,u2,2011-11-01 09:00,4,2.5,DE,buy
A4,u2,2011-12-09 09:00,1,1.0,FR,login
A5,u2,2011-12-09 18:00,3,1.0,FR,login
A6,u3,2010-01-01 00:00,1,100.0,US,buy
A7,,2011-12-01 00:00,1,1.0,UK,buy
A8,u4,2011-12-11 00:00,1,1.0,UK,buy
"""
COLUMNS = "'InvoiceNo', 'CustomerID', 'InvoiceDate', 'Quantity', 'UnitPrice', 'Country', 'event'"


def _shared_data() -> Path:
    """shared/ sits beside the repository (CI) or at /work/shared (a developer's machine)."""
    for root in (Path(__file__).resolve().parents[2] / "shared", Path("/work/shared")):
        if (root / "data" / "marketing_campaign.csv").is_file():
            return root / "data"
    return Path("/nonexistent")


MARKETING = _shared_data() / "marketing_campaign.csv"


@pytest.fixture
def orders(tmp_path: Path) -> Path:
    (tmp_path / "orders.csv").write_text(ORDERS)
    return tmp_path


def events(**raw: Any) -> dict[str, Any]:
    base = {
        "kind": "events",
        "from": {"kind": "file", "path": "orders.csv"},
        "user": "CustomerID",
        "time": "InvoiceDate",
        "features": {"n": {"count": True}},
    }
    return {**base, **raw}


def read(tmp_path: Path, **raw: Any) -> pd.DataFrame:
    return spec(events(**raw)).read(ctx(tmp_path, position=2))


def read_error(tmp_path: Path, **raw: Any) -> str:
    with pytest.raises(SourceError) as info:
        read(tmp_path, **raw)
    return str(info.value)


def test_events_rfm_example_matches_hand_computed_values(orders: Path):
    frame = read(
        orders,
        as_of="2011-12-10",
        window_days=365,
        filter="Quantity > 0",
        derive={"amount": "Quantity * UnitPrice"},
        features={
            "frequency": {"count_distinct": "InvoiceNo"},
            "monetary": {"sum": "amount"},
            "recency_days": {"recency": True},
            "tenure_days": {"tenure": True},
            "active_days": {"active_days": True},
            "avg_basket": {"mean": "amount"},
            "logins": {"count": True, "where": "event == 'login'"},
            "country": {"mode": "Country"},
        },
    )
    # u3 is outside the 365-day window, u4 after as_of, the empty CustomerID is skipped;
    # u1's return (Quantity -1) is filtered out.
    expected = pd.DataFrame(
        {
            "user_id": ["u1", "u2"],
            "frequency": [1, 3],
            "monetary": [20.0, 14.0],  # u1: 2*5 + 1*10; u2: 4*2.5 + 1 + 3
            "recency_days": [8 + 14 / 24, 6 / 24],  # last events 12-01 10:00 and 12-09 18:00
            "tenure_days": [8 + 14 / 24, 38 + 15 / 24],  # first events 12-01 10:00, 11-01 09:00
            "active_days": [1, 2],
            "avg_basket": [10.0, 14.0 / 3],
            "logins": [0, 2],
            "country": ["UK", "FR"],
        }
    )
    pd.testing.assert_frame_equal(frame, expected, check_dtype=False)
    assert frame["frequency"].dtype == "int64" and frame["logins"].dtype == "int64"


def test_events_default_as_of_is_latest_event(orders: Path):
    frame = read(orders, features={"recency": {"recency": True}})
    # latest event: u4 at 2011-12-11 00:00; u1's last is its return on 12-05 12:00
    assert frame.set_index("user_id")["recency"].to_dict() == pytest.approx(
        {"u1": 5.5, "u2": 1 + 6 / 24, "u3": 709.0, "u4": 0.0}
    )


def test_events_window_keeps_open_lower_closed_upper_bound(orders: Path):
    # as_of 12-09 18:00, window 1 day: (12-08 18:00, 12-09 18:00] keeps both u2 logins only
    frame = read(orders, as_of="2011-12-09 18:00", window_days=1)
    assert frame.to_dict("list") == {"user_id": ["u2"], "n": [2]}
    frame = read(orders, as_of="2011-12-09 17:59", window_days=0.5)
    assert frame.to_dict("list") == {"user_id": ["u2"], "n": [1]}


def test_events_column_aggregations(orders: Path):
    frame = read(
        orders,
        as_of="2011-12-31",
        features={
            "qty_count": {"count": "Quantity"},
            "qty_min": {"min": "Quantity"},
            "qty_max": {"max": "Quantity"},
            "qty_median": {"median": "Quantity"},
            "first_country": {"first": "Country"},
            "last_event": {"last": "event"},
            "last_time": {"max": "InvoiceDate"},
        },
    ).set_index("user_id")
    assert frame.loc["u1"].tolist()[:4] == [3, -1, 2, 1.0]
    assert frame.loc["u2"].tolist()[:4] == [3, 1, 4, 3.0]
    assert frame["first_country"].to_dict() == {"u1": "UK", "u2": "DE", "u3": "US", "u4": "UK"}
    assert frame["last_event"].to_dict() == {
        "u1": "return",
        "u2": "login",
        "u3": "buy",
        "u4": "buy",
    }
    assert frame.loc["u2", "last_time"] == pd.Timestamp("2011-12-09 18:00")


def test_events_where_gives_zero_counts_and_missing_means(orders: Path):
    frame = read(
        orders,
        features={
            "logins": {"count": True, "where": "event == 'login'"},
            "login_qty": {"sum": "Quantity", "where": "event == 'login'"},
            "login_days": {"active_days": True, "where": "event == 'login'"},
            "login_mean": {"mean": "Quantity", "where": "event == 'login'"},
            "last_login": {"recency": True, "where": "event == 'login'"},
        },
    ).set_index("user_id")
    assert frame["logins"].tolist() == [0, 2, 0, 0]
    assert frame["login_qty"].tolist() == [0, 4, 0, 0]
    assert frame["login_days"].tolist() == [0, 1, 0, 0]
    assert frame["login_mean"].isna().tolist() == [True, False, True, True]
    assert frame.loc["u2", "last_login"] == pytest.approx(1 + 6 / 24)


def test_events_mode_ties_go_to_smallest_value(tmp_path: Path):
    (tmp_path / "orders.csv").write_text("u,t,c\n1,2020-01-01,b\n1,2020-01-02,a\n2,2020-01-01,z\n")
    frame = read(tmp_path, user="u", time="t", features={"m": {"mode": "c"}})
    assert frame["m"].tolist() == ["a", "z"]


def test_events_time_format_and_dayfirst(tmp_path: Path):
    (tmp_path / "orders.csv").write_text("u,t\n1,04-09-2012\n1,13-09-2012\n2,01-02-2012\n")
    for options in ({"time_format": "%d-%m-%Y"}, {"dayfirst": True}):
        frame = read(tmp_path, user="u", time="t", features={"tenure": {"tenure": True}}, **options)
        assert frame["tenure"].tolist() == [9.0, 225.0]


def test_events_epoch_times_need_time_unit(tmp_path: Path):
    (tmp_path / "orders.csv").write_text("u,t\n1,0\n1,86400\n")
    assert read_error(tmp_path, user="u", time="t") == (
        "source #2 (events): time column 't' holds numbers (e.g. 0); set `time_unit:` to s or "
        "ms for epoch times"
    )
    frame = read(tmp_path, user="u", time="t", time_unit="s", features={"d": {"active_days": True}})
    assert frame["d"].tolist() == [2]


def test_events_unparseable_time_names_a_sample_value(tmp_path: Path):
    (tmp_path / "orders.csv").write_text("u,t\n1,2020-01-01\n2,2020-01-02\n3,yesterday\n")
    assert read_error(tmp_path, user="u", time="t", time_format="%Y-%m-%d") == (
        "source #2 (events): time column 't' has 1 value(s) that are not dates (format "
        "'%Y-%m-%d'), e.g. 'yesterday'; set `time_format:` (like '%d-%m-%Y %H:%M') or "
        "`dayfirst: true`, or fix the data"
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"filter": "Quantiy > 0"},
            f"filter: 'Quantiy > 0' uses unknown column(s) 'Quantiy'; columns are {COLUMNS} "
            "(quote names with spaces in backticks)",
        ),
        (
            {"derive": {"amount": "Quantity * Price"}},
            f"derive.amount: 'Quantity * Price' uses unknown column(s) 'Price'; columns are "
            f"{COLUMNS} (quote names with spaces in backticks)",
        ),
        (
            {"features": {"m": {"sum": "amout"}}},
            f"features.m: sum: unknown column 'amout'; columns are {COLUMNS}",
        ),
        (
            {"features": {"m": {"count": True, "where": "evnt == 'login' and Qty > 1"}}},
            f"features.m.where: \"evnt == 'login' and Qty > 1\" uses unknown column(s) 'Qty', "
            f"'evnt'; columns are {COLUMNS} (quote names with spaces in backticks)",
        ),
        ({"user": "Customer"}, f"user column 'Customer' not found; columns are {COLUMNS}"),
        ({"time": "Date"}, f"time column 'Date' not found; columns are {COLUMNS}"),
        (
            {"features": {"m": {"mean": "Country"}}},
            "features.m: mean needs a numeric column, but 'Country' holds str values; convert it "
            "with `derive:`",
        ),
        (
            {"filter": "Quantity * 2"},
            "filter: 'Quantity * 2' must be a condition (True or False per row, e.g. \"Quantity > "
            '0"), but gives int64 values',
        ),
        (
            {"features": {"user_id": {"count": True}}},
            "features.user_id: the name 'user_id' is the id column; pick another",
        ),
    ],
)
def test_events_bad_names_fail_before_aggregating(orders: Path, raw: dict, message: str):
    assert read_error(orders, **raw) == f"source #2 (events): {message}"


def test_events_derived_columns_are_usable_downstream(orders: Path):
    frame = read(
        orders,
        derive={"amount": "Quantity * UnitPrice", "big": "amount > 9"},
        features={"n_big": {"count": True, "where": "big"}},
    )
    assert frame["n_big"].tolist() == [2, 1, 1, 0]


def test_events_nothing_left_is_an_error(orders: Path):
    assert read_error(orders, filter="Quantity > 100") == (
        "source #2 (events): no events left after `filter`, `as_of` and `window_days`; loosen "
        "them or check the time column"
    )


def test_events_inner_source_errors_name_both_sources(tmp_path: Path):
    message = read_error(tmp_path)
    assert message == (
        f"source #2 (events) from (file orders.csv): file '{tmp_path / 'orders.csv'}' does not "
        "exist; check the path"
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"features": {"r": {"recency": True}}, "time": None}, "'r (recency)' need(s) `time:`"),
        ({"features": {"r": {"sum": True}}}, "`sum:` takes a column name, got True"),
        ({"features": {"r": {"summ": "x"}}}, "unknown key(s) 'summ'; aggregations are count,"),
        ({"features": {"r": {"sum": "a", "max": "b"}}}, "give exactly one aggregation, got 2"),
        ({"features": {"r": {"recency": False}}}, "write `recency: true`"),
        (
            {"filter": "Quantity >"},
            "filter: 'Quantity >' is not a valid expression (invalid syntax)",
        ),
        (
            {"features": {"m": {"count": True, "where": "a ="}}},
            "features.m.where: 'a =' is not a valid expression",
        ),
        ({"filter": "x > @limit"}, "local variables ('@name') are not available"),
        ({"as_of": "someday"}, "cannot read 'someday' as a date; write it like 2011-12-10"),
        ({"id": "CustomerID"}, "names its user column with `user:`, not `id:`"),
        ({"from": {"kind": "file", "path": "x", "dedupe": "last"}}, "`from:` key(s) 'dedupe'"),
    ],
)
def test_events_config_errors(raw: dict, message: str):
    with pytest.raises(ValidationError) as info:
        spec(events(**raw))
    assert message in str(info.value)


def test_events_from_sql_source(tmp_path: Path):
    with sqlite3.connect(tmp_path / "log.db") as db:
        db.execute("CREATE TABLE log (uid INTEGER, at TEXT, kind TEXT)")
        db.executemany(
            "INSERT INTO log VALUES (?, ?, ?)",
            [(1, "2024-01-01", "a"), (1, "2024-01-03", "b"), (2, "2024-01-02", "a")],
        )
    raw = events(
        **{"from": {"kind": "sql", "url": "sqlite:///log.db", "table": "log"}},
        user="uid",
        time="at",
        features={"n": {"count": True}, "days": {"tenure": True}, "k": {"last": "kind"}},
    )
    frame = spec(raw).read(ctx(tmp_path))
    assert frame.to_dict("list") == {
        "user_id": [1, 2],
        "n": [2, 1],
        "days": [2.0, 1.0],
        "k": ["b", "a"],
    }


def test_events_dump_round_trips_through_validation():
    source = spec(events(features={"m": {"sum": "Quantity", "where": "Quantity > 0"}}))
    dumped = source.model_dump(mode="json")
    assert dumped["from"]["path"] == "orders.csv"
    assert dumped["features"] == {"m": {"sum": "Quantity", "where": "Quantity > 0"}}
    assert spec(dumped) == source


@pytest.mark.skipif(not MARKETING.is_file(), reason=f"{MARKETING} not found (shared/ data)")
def test_events_real_marketing_campaign_matches_pandas(tmp_path: Path):
    wide = pd.read_csv(MARKETING, sep="\t")
    spend = [
        "MntWines",
        "MntFruits",
        "MntMeatProducts",
        "MntFishProducts",
        "MntSweetProducts",
        "MntGoldProds",
    ]
    # One event per customer and category with spend > 0, on day k after enrolment.
    long = wide.melt(
        id_vars=["ID", "Dt_Customer", "Education"],
        value_vars=spend,
        var_name="category",
        value_name="amount",
    )
    long["k"] = long["category"].map(spend.index)
    when = pd.to_datetime(long["Dt_Customer"], format="%d-%m-%Y") + pd.to_timedelta(long["k"], "D")
    long["when"] = when.dt.strftime("%d-%m-%Y")
    long.sample(frac=1, random_state=0).drop(columns=["Dt_Customer", "k"]).to_csv(
        tmp_path / "spend.tsv", sep="\t", index=False
    )
    raw = {
        "kind": "events",
        "from": {"kind": "file", "path": "spend.tsv"},
        "user": "ID",
        "time": "when",
        "time_format": "%d-%m-%Y",
        "as_of": "2015-01-01",
        "filter": "amount > 0",
        "features": {
            "monetary": {"sum": "amount"},
            "categories": {"count_distinct": "category"},
            "active_days": {"active_days": True},
            "avg": {"mean": "amount"},
            "median": {"median": "amount"},
            "top": {"max": "amount"},
            "first_category": {"first": "category"},
            "tenure": {"tenure": True},
            "recency": {"recency": True},
            "education": {"mode": "Education"},
            "wine_share": {"sum": "amount", "where": "category == 'MntWines'"},
        },
    }
    got = spec(raw).read(ctx(tmp_path)).set_index("user_id").sort_index()

    w = wide.set_index("ID").sort_index()
    w = w[(w[spend] > 0).any(axis=1)]
    values = w[spend].where(w[spend] > 0)
    enrol = pd.to_datetime(w["Dt_Customer"], format="%d-%m-%Y")
    first_k = values.notna().to_numpy().argmax(axis=1)
    last_k = len(spend) - 1 - values.notna().to_numpy()[:, ::-1].argmax(axis=1)
    as_of = pd.Timestamp("2015-01-01")
    assert len(got) == len(w) == 2240
    np.testing.assert_allclose(got["monetary"], w[spend].sum(axis=1))
    np.testing.assert_array_equal(got["categories"], values.notna().sum(axis=1))
    np.testing.assert_array_equal(got["active_days"], values.notna().sum(axis=1))
    np.testing.assert_allclose(got["avg"], values.mean(axis=1))
    np.testing.assert_allclose(got["median"], values.median(axis=1))
    np.testing.assert_allclose(got["top"], values.max(axis=1))
    assert got["first_category"].tolist() == [spend[k] for k in first_k]
    np.testing.assert_allclose(got["tenure"], (as_of - enrol).dt.days - first_k)
    np.testing.assert_allclose(got["recency"], (as_of - enrol).dt.days - last_k)
    assert got["education"].tolist() == w["Education"].tolist()
    np.testing.assert_allclose(got["wine_share"], w["MntWines"])


def test_events_300k_events_aggregate_quickly(tmp_path: Path):
    rng = np.random.default_rng(0)
    n = 300_000
    log = pd.DataFrame(
        {
            "u": rng.integers(0, 20_000, n),
            "t": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 10**7, n), "s"),
            "x": rng.normal(size=n),
            "c": rng.choice(["a", "b", "c"], n),
        }
    )
    log.to_parquet(tmp_path / "log.parquet")
    raw = {
        "kind": "events",
        "from": {"kind": "file", "path": "log.parquet"},
        "user": "u",
        "time": "t",
        "features": {
            "n": {"count": True},
            "s": {"sum": "x"},
            "r": {"recency": True},
            "d": {"active_days": True},
            "m": {"mode": "c"},
            "k": {"count_distinct": "c"},
        },
    }
    start = time.perf_counter()
    frame = spec(raw).read(ctx(tmp_path))
    elapsed = time.perf_counter() - start
    assert frame["n"].sum() == n
    np.testing.assert_allclose(frame["s"], log.groupby("u")["x"].sum().to_numpy())
    assert elapsed < 10, f"300k events took {elapsed:.1f} s"
