"""Clustering dates: detected (typed, text, a named format), never one-hot encoded, clustered as
days before the reference date, the same read whole, a column at a time and by the stored model;
and text columns with too many values are an error that says what to do."""

from __future__ import annotations

import datetime as dt
import json
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import shared_dataset
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import apg.prepare.preprocessing
from apg.config import FeaturesConfig, PreprocessingConfig
from apg.errors import DataError
from apg.prepare.dates import FORMATS, ISO, find_dates, read_dates, rule_for
from apg.prepare.features import select_features, select_features_by_column
from apg.prepare.preprocessing import Prepared, prepare, prepare_by_column, transform
from apg.search.clusters import ClusterModel
from apg.search.model_io import StoredModel, from_fitted


class Columns:
    """A table read one column at a time (``apg.prepare.features.Columns``)."""

    def __init__(self, table: pd.DataFrame) -> None:
        self.table = table
        self.names = [str(c) for c in table.columns]
        self.num_rows = len(table)

    def column(self, name: str) -> pd.Series:
        return self.table[name].reset_index(drop=True)

    def rows(self, indices: np.ndarray, columns: list[str]) -> pd.DataFrame:
        return self.table[columns].iloc[indices].reset_index(drop=True)


def users(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Signup dates written day first (some days above 12), a typed last-seen timestamp in
    a zone, spend, a plan."""
    rng = np.random.default_rng(seed)
    signup = pd.Timestamp("2012-07-30") + pd.to_timedelta(rng.integers(0, 700, n), unit="D")
    seen = pd.Timestamp("2020-01-01", tz="Europe/Paris") + pd.to_timedelta(
        rng.integers(0, 90 * 24, n), unit="h"
    )
    return pd.DataFrame(
        {
            "id": [f"u{i}" for i in range(n)],
            "signup": [d.strftime("%d-%m-%Y") for d in signup],
            "seen": seen,
            "spend": rng.gamma(2.0, 30.0, n),
            "plan": rng.choice(["free", "pro", "team"], n),
        }
    )


ROLES = FeaturesConfig(behavioral=["signup", "seen", "spend", "plan"])


def expected_days(text: pd.Series, fmt: str, reference: dt.datetime | None = None) -> np.ndarray:
    """Days before the reference (the newest date), by the standard library."""
    dates = [None if pd.isna(v) else dt.datetime.strptime(v, fmt) for v in text]
    ref = reference or max(d for d in dates if d is not None)
    return np.array([np.nan if d is None else (ref - d).total_seconds() / 86400 for d in dates])


def select(table: pd.DataFrame, roles: FeaturesConfig = ROLES, **kw: Any) -> Any:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = select_features(table, "id", roles, **kw)
    return frame, [str(w.message) for w in caught]


# --------------------------------------------------------------------------- reading


def test_prepare_dates_day_first_text_becomes_days_before_the_newest_date() -> None:
    table = users()
    frame, said = select(table)
    newest = max(dt.datetime.strptime(v, "%d-%m-%Y") for v in table["signup"])
    assert said[0] == (
        "the data: column 'signup' holds dates, read as %d-%m-%Y; clustered as days before "
        f"{newest:%Y-%m-%d} (the newest date in it)"
    )
    np.testing.assert_array_equal(
        frame.raw["signup"].to_numpy(), expected_days(table["signup"], "%d-%m-%Y")
    )
    assert "signup" in frame.numeric_features and "signup" not in frame.categorical_features
    assert frame.dates["signup"].format == "%d-%m-%Y"


def test_prepare_dates_typed_zoned_timestamps_are_days_in_utc() -> None:
    table = users()
    frame, said = select(table)
    utc = table["seen"].dt.tz_convert("UTC").dt.tz_localize(None)
    newest = utc.max()
    assert said[1] == (
        "the data: column 'seen' holds dates, read as typed dates; clustered as days before "
        f"{newest.isoformat()} (the newest date in it)"
    )
    expected = np.array([(newest - v).total_seconds() / 86400 for v in utc])
    np.testing.assert_allclose(frame.raw["seen"].to_numpy(), expected, rtol=0, atol=1e-9)


def test_prepare_dates_marketing_campaign_dt_customer_is_one_column_not_663() -> None:
    path = shared_dataset("marketing_campaign.csv")
    table = pd.read_csv(path, sep="\t")
    roles = FeaturesConfig(
        behavioral=["Dt_Customer", "Recency", "MntWines"], demographic=["Income"]
    )
    with pytest.warns(UserWarning) as caught:
        prepared = prepare(select_features(table, "ID", roles), PreprocessingConfig())
    assert [str(w.message) for w in caught] == [
        "the data: column 'Dt_Customer' holds dates, read as %d-%m-%Y; clustered as days "
        "before 2014-06-29 (the newest date in it)"
    ]
    assert table["Dt_Customer"].nunique() == 663
    assert prepared.columns == ["Dt_Customer", "Recency", "MntWines"]
    days = expected_days(table["Dt_Customer"], "%d-%m-%Y")
    assert (days.min(), days.max()) == (0.0, 699.0)
    np.testing.assert_allclose(prepared.X[:, 0], (days - days.mean()) / days.std(), atol=1e-12)
    assert prepared.dates == [
        {
            "column": "Dt_Customer",
            "unit": "days before the reference date",
            "reference_date": "2014-06-29",
            "reference": "newest date",
            "format": "%d-%m-%Y",
        }
    ]


def test_prepare_dates_month_first_is_chosen_when_only_it_reads_every_value() -> None:
    text = pd.Series(["12/25/2019", "01/02/2020", "03/04/2020", None], dtype=object)
    found = find_dates(text)
    assert found is not None and found.format == "%m/%d/%Y" and not found.ambiguous
    assert list(found.stamps.dropna().dt.strftime("%Y-%m-%d")) == [
        "2019-12-25",
        "2020-01-02",
        "2020-03-04",
    ]


def test_prepare_dates_ambiguous_order_reads_day_first_and_says_so() -> None:
    table = pd.DataFrame(
        {
            "id": range(12),
            "when": [f"{d:02d}/{m:02d}/2020" for d, m in zip(range(1, 13), [3] * 12, strict=True)],
            "x": np.arange(12.0),
        }
    )
    _, said = select(table, FeaturesConfig(behavioral=["when", "x"]))
    assert said == [
        "the data: column 'when' holds dates, read as %d/%m/%Y (day first: every value also "
        "reads month first; set preprocessing.date_formats to change); clustered as days "
        "before 2020-03-12 (the newest date in it)"
    ]
    frame, said = select(
        table,
        FeaturesConfig(behavioral=["when", "x"]),
        preprocessing=PreprocessingConfig(date_formats={"when": "%m/%d/%Y"}),
    )
    assert said == [
        "the data: column 'when' holds dates, read as %m/%d/%Y; clustered as days before "
        "2020-12-03 (the newest date in it)"
    ]
    np.testing.assert_array_equal(
        frame.raw["when"].to_numpy(), expected_days(table["when"], "%m/%d/%Y")
    )


def test_prepare_dates_configured_reference_and_unreadable_values() -> None:
    table = users(200)
    table.loc[[3, 50], "signup"] = "n/a"
    table.loc[7, "signup"] = None
    config = PreprocessingConfig(reference_date=dt.date(2014, 1, 1))
    frame, said = select(table, preprocessing=config)
    assert said[0] == (
        "the data: column 'signup' holds dates, read as %d-%m-%Y; clustered as days before "
        "2014-01-01 (preprocessing.reference_date); 2 value(s) that are not dates in this "
        "format, e.g. 'n/a', count as missing"
    )
    text = table["signup"].where(table["signup"] != "n/a")
    expected = expected_days(text, "%d-%m-%Y", dt.datetime(2014, 1, 1))
    np.testing.assert_array_equal(frame.raw["signup"].to_numpy(), expected)
    assert (expected < 0).any()  # dates after the reference are negative days
    prepared = prepare(frame, config)
    assert prepared.imputed["signup"] == 3
    filled = np.where(np.isnan(expected), np.nanmedian(expected), expected)
    np.testing.assert_allclose(
        prepared.X[:, 0], (filled - filled.mean()) / filled.std(), rtol=0, atol=1e-12
    )


def test_prepare_dates_named_format_reads_numbers_as_dates() -> None:
    table = pd.DataFrame({"id": range(20), "day": [20120901 + i for i in range(20)]})
    table["x"] = np.arange(20.0) ** 2
    config = PreprocessingConfig(date_formats={"day": "%Y%m%d"})
    frame, said = select(table, FeaturesConfig(behavioral=["day", "x"]), preprocessing=config)
    assert said == [
        "the data: column 'day' holds dates, read as %Y%m%d; clustered as days before "
        "2012-09-20 (the newest date in it)"
    ]
    assert list(frame.raw["day"]) == [float(19 - i) for i in range(20)]
    # Without the format the numbers stay numbers.
    frame, said = select(table, FeaturesConfig(behavioral=["day", "x"]))
    assert said == [] and list(frame.raw["day"]) == list(table["day"])


def test_prepare_dates_named_format_that_reads_nothing_is_an_error() -> None:
    table = users(50)
    config = PreprocessingConfig(date_formats={"signup": "%Y-%m-%d"})
    message = (
        "users.csv: column 'signup': no value reads as a date in format '%Y-%m-%d' "
        f"(preprocessing.date_formats), e.g. {table['signup'][0]!r}; fix the format"
    )
    with pytest.raises(DataError, match=f"^{re.escape(message)}$"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        select_features(table, "id", ROLES, origin="users.csv", preprocessing=config)


def test_prepare_dates_named_format_of_a_column_not_clustered_is_an_error() -> None:
    config = PreprocessingConfig(date_formats={"signup": "%d-%m-%Y", "born": "%Y"})
    message = (
        "preprocessing.date_formats: 'born' not among the clustering columns 'signup', "
        "'seen', 'spend', 'plan'; only clustered dates are read as dates"
    )
    with pytest.raises(DataError, match=f"^{re.escape(message)}$"):
        select_features(users(20), "id", ROLES, preprocessing=config)


@pytest.mark.parametrize("fmt", ["%d", "day-month", "%H:%M"])
def test_prepare_dates_config_refuses_a_format_without_a_year(fmt: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(f"date_formats: {fmt!r} for column")):
        PreprocessingConfig(date_formats={"signup": fmt})


def test_prepare_dates_are_not_guessed_from_two_digit_years_or_words() -> None:
    assert find_dates(pd.Series(["04-09-12", "05-10-13", "06-11-14"])) is None
    years = pd.Series([str(1950 + i % 50) for i in range(40)] + ["unknown"])
    assert find_dates(years) is None  # a year is not a date (pandas' ISO reader says it is)
    assert pd.to_datetime(years[:1], format="ISO8601").notna().all()
    assert find_dates(pd.Series(["20120904", "20120905"])) is None
    assert find_dates(pd.Series(["free", "pro", "team"])) is None
    assert find_dates(pd.Series([1.0, 2.0, 3.0])) is None
    # 90% of values is not "nearly all".
    mostly = pd.Series([f"{d:02d}-01-2020" for d in range(1, 19)] + ["soon", "later"])
    assert find_dates(mostly) is None


# --------------------------------------------------------------------------- too many categories


def test_prepare_text_with_more_values_than_max_categories_is_an_error() -> None:
    table = pd.DataFrame(
        {"id": range(100), "city": [f"city {i % 41}" for i in range(100)], "x": np.arange(100.0)}
    )
    roles = FeaturesConfig(behavioral=["city", "x"])
    message = (
        "users.csv: column 'city' has 41 distinct values, more than "
        "preprocessing.max_categories (30): one-hot encoding would add a column per value. "
        "Drop it from the clustering columns, list it as demographic, or raise "
        "preprocessing.max_categories"
    )
    with pytest.raises(DataError, match=f"^{re.escape(message)}$"):
        select_features(table, "id", roles, origin="users.csv")
    with pytest.raises(DataError, match=f"^{re.escape(message)}$"):
        select_features_by_column(Columns(table), "id", roles, origin="users.csv")
    frame = select_features(
        table, "id", roles, preprocessing=PreprocessingConfig(max_categories=41)
    )
    assert prepare(frame, PreprocessingConfig(max_categories=41)).X.shape == (100, 42)
    # As a demographic it only describes personas.
    select_features(table, "id", FeaturesConfig(behavioral=["x"], demographic=["city"]))


def test_prepare_mixed_date_formats_get_the_date_hint() -> None:
    days = pd.date_range("2020-01-01", periods=60, freq="D")
    mixed = [d.strftime("%d-%m-%Y" if i % 2 else "%Y/%m/%d") for i, d in enumerate(days)]
    table = pd.DataFrame({"id": range(60), "joined": mixed, "x": np.arange(60.0)})
    message = (
        "the data: column 'joined' has 60 distinct values, more than "
        "preprocessing.max_categories (30): one-hot encoding would add a column per value. "
        "Drop it from the clustering columns, list it as demographic, or raise "
        "preprocessing.max_categories; if it holds dates, give its format in "
        "preprocessing.date_formats"
    )
    with pytest.raises(DataError, match=f"^{re.escape(message)}$"):
        select_features(table, "id", FeaturesConfig(behavioral=["joined", "x"]))


# --------------------------------------------------------------------------- whole, streamed, model


def both(table: pd.DataFrame, config: PreprocessingConfig) -> tuple[Prepared, Prepared]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        memory = prepare(select_features(table, "id", ROLES, preprocessing=config), config)
    with warnings.catch_warnings(record=True) as caught_lazy:
        warnings.simplefilter("always")
        frame = select_features_by_column(Columns(table), "id", ROLES, preprocessing=config)
        lazy = prepare_by_column(frame, config)
    assert [str(w.message) for w in caught_lazy] == [str(w.message) for w in caught]
    return memory, lazy


@pytest.mark.parametrize("missing", ["impute_median", "drop_rows"])
@pytest.mark.parametrize("by_column", [False, True])
def test_prepare_dates_read_a_column_at_a_time_are_the_whole_tables_to_the_bit(
    monkeypatch: pytest.MonkeyPatch, missing: str, by_column: bool
) -> None:
    if by_column:  # prepare itself fits column by column above this many rows
        monkeypatch.setattr(apg.prepare.preprocessing, "TRANSFORM_CHUNK_ROWS", 50)
    table = users(400, seed=3)
    table.loc[[5, 9, 300], "signup"] = None
    config = PreprocessingConfig(missing=missing)  # type: ignore[arg-type]
    memory, lazy = both(table, config)
    assert lazy.columns == memory.columns
    assert lazy.dates == memory.dates and lazy.frame.dates == memory.frame.dates
    raw = lazy.frame.raw
    for col in ("signup", "seen"):
        pd.testing.assert_series_equal(raw[col], memory.frame.raw[col])  # type: ignore[index]
    batches = [transform(lazy, b) for b in raw.batches(raw.columns, 37)]  # type: ignore[union-attr]
    assert np.array_equal(np.vstack(batches), memory.X)
    picked = np.array([7, 0, 123])
    one = transform(lazy, raw.rows(picked, raw.columns))  # type: ignore[union-attr]
    assert np.array_equal(one, memory.X[picked])


def test_prepare_dates_stored_model_reads_new_users_dates_with_the_runs_reference(
    tmp_path: Path,
) -> None:
    table = users(300)
    with pytest.warns(UserWarning):
        prepared = prepare(select_features(table, "id", ROLES), PreprocessingConfig())
    labels = (prepared.X[:, 0] > 0).astype(np.intp)
    cluster = ClusterModel.from_fit("kmeans", prepared.X, labels)
    model = from_fitted(prepared.transformer, cluster, "kmeans", {"k": 2}, prepared.X, labels)
    doc = json.loads(model.to_json())
    assert doc["format"] == 2
    reference = prepared.frame.dates["signup"].reference
    assert doc["preprocessing"]["dates"]["signup"] == {
        "format": "%d-%m-%Y",
        "reference": reference.isoformat(),
    }
    loaded = StoredModel.from_json(model.to_json())
    # The run's own rows, as read from a CSV export: text dates, zoned timestamps as text.
    path = tmp_path / "users.csv"
    table.to_csv(path, index=False)
    again = pd.read_csv(path)
    assert again["seen"].dtype != "datetime64[ns]"  # text, read as ISO 8601
    np.testing.assert_allclose(loaded.transform(again), prepared.X, rtol=0, atol=1e-12)
    assert np.array_equal(loaded.assign(again), model.predict(prepared.X))
    # New users later than every training date: negative days, on the run's scale.
    new = users(20, seed=9)
    new["signup"] = [(reference + pd.Timedelta(days=d)).strftime("%d-%m-%Y") for d in range(20)]
    got = loaded.transform(new)
    np.testing.assert_allclose(got, transform(prepared, new), rtol=0, atol=1e-12)
    scaler = prepared.transformer.named_steps["columns"].named_transformers_["num"]["scale"]
    days = -np.arange(20.0)
    np.testing.assert_allclose(got[:, 0], (days - scaler.mean_[0]) / scaler.scale_[0], atol=1e-12)


# --------------------------------------------------------------------------- properties

TEXT_FORMATS = [f for f in FORMATS if f != ISO] + ["%Y-%m-%d"]


def _swap(fmt: str) -> str:
    return fmt.replace("%d", "\0").replace("%m", "%d").replace("\0", "%m")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    days=st.lists(
        st.datetimes(dt.datetime(1950, 1, 1), dt.datetime(2040, 12, 31)), min_size=1, max_size=40
    ),
    fmt=st.sampled_from(TEXT_FORMATS),
    gaps=st.lists(st.booleans(), min_size=40, max_size=40),
)
def test_prepare_dates_any_dates_written_in_a_known_format_read_back(
    days: list[dt.datetime], fmt: str, gaps: list[bool]
) -> None:
    if "%H" not in fmt:
        days = [d.replace(hour=0, minute=0, second=0, microsecond=0) for d in days]
    elif "%S" not in fmt:
        days = [d.replace(second=0, microsecond=0) for d in days]
    else:
        days = [d.replace(microsecond=0) for d in days]
    text = pd.Series(
        [None if gap else d.strftime(fmt) for d, gap in zip(days, gaps, strict=False)],
        dtype=object,
    )
    present = [d for d, gap in zip(days, gaps, strict=False) if not gap]
    found = find_dates(text)
    if not present:
        assert found is None
        return
    assert found is not None and found.unread == 0
    stamps = [s.to_pydatetime() for s in found.stamps.dropna()]
    swapped = "%d" in fmt and "%m" in fmt and not fmt.startswith("%Y")
    if stamps != present:
        # Only a month-first table without a day above 12 reads otherwise: day first.
        assert swapped and found.ambiguous and all(d.day <= 12 for d in present)
        assert found.format == _swap(fmt)
        assert stamps == [d.replace(month=d.day, day=d.month) for d in present]
    rule = rule_for(found, None)
    newest = max(stamps)
    expected = [np.nan if gap else 0.0 for gap in gaps[: len(days)]]
    it = iter((newest - s).total_seconds() / 86400 for s in stamps)
    expected = [np.nan if gap else next(it) for gap in gaps[: len(days)]]
    np.testing.assert_allclose(rule.days(text).to_numpy(), expected, rtol=0, atol=1e-9)


_JUNK = st.one_of(
    st.none(),
    st.text(max_size=12),
    st.sampled_from(["", " ", "n/a", "31-02-2020", "2020-13-01", "00/00/0000", "1e5", "-"]),
    st.dates(dt.date(1900, 1, 1), dt.date(2100, 1, 1)).map(lambda d: d.strftime("%d.%m.%Y")),
    st.integers(-(10**6), 10**6),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(_JUNK, min_size=10, max_size=40))
def test_prepare_dates_bad_input_is_read_or_refused_never_crashes(values: list[Any]) -> None:
    column = pd.Series(values, dtype=object)
    found = find_dates(column)
    if found is not None:
        present = int(column.notna().sum())
        assert found.unread <= 0.05 * present
        assert read_dates(column, found.format).notna().sum() == present - found.unread
    table = pd.DataFrame({"id": range(len(values)), "v": column, "x": np.arange(len(values))})
    roles = FeaturesConfig(behavioral=["v", "x"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            memory = select_features(table, "id", roles)
        except DataError as exc:
            with pytest.raises(DataError, match=f"^{re.escape(str(exc))}$"):
                select_features_by_column(Columns(table), "id", roles)
            return
        lazy = select_features_by_column(Columns(table), "id", roles)
    assert lazy.dates == memory.dates
    pd.testing.assert_series_equal(lazy.raw["v"], memory.raw["v"])  # type: ignore[index]
