"""Tests for the synthetic user generator with planted segments."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.cluster import KMeans
from sklearn.impute import SimpleImputer
from sklearn.metrics import adjusted_rand_score, silhouette_score
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from apg.sources.sample import (
    ATTITUDINAL,
    BEHAVIORAL,
    COMPANY_SIZES,
    COUNTRIES,
    DEMOGRAPHIC,
    GENDERS,
    ID_COLUMN,
    MISSING_SHARE,
    OCCUPATIONS,
    SEGMENTS,
    generate_users,
    write_sample,
)

NUMERIC = BEHAVIORAL + ATTITUDINAL
COUNTS = (
    "logins_per_month",
    "sessions_per_week",
    "features_used",
    "purchases_per_year",
    "support_tickets",
    "days_since_last_login",
    "tenure_months",
)
READERS = {
    ".csv": pd.read_csv,
    ".tsv": lambda p: pd.read_csv(p, sep="\t"),
    ".parquet": pd.read_parquet,
    ".jsonl": lambda p: pd.read_json(p, lines=True),
}


@pytest.fixture(scope="module")
def big() -> pd.DataFrame:
    """Large enough that shares are within a fraction of a percent of their targets."""
    return generate_users(40_000, seed=3, with_segment=True)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """KMeans on 5000 rows is fastest single-threaded; OpenMP threads spin-wait badly
    when the CPU is shared (e.g. parallel test runs) and can make it 50x slower."""
    with threadpool_limits(limits=1):
        yield


@pytest.fixture(scope="module")
def scaled_5000() -> tuple[np.ndarray, np.ndarray]:
    """The standard pipeline's input: median-imputed, standardised numeric columns."""
    users = generate_users(5000, seed=0, with_segment=True)
    X = SimpleImputer(strategy="median").fit_transform(users[list(NUMERIC)].to_numpy(float))
    return StandardScaler().fit_transform(X), users["segment"].to_numpy()


def test_generate_users_columns_and_dtypes() -> None:
    users = generate_users(200, seed=1)
    assert list(users.columns) == [ID_COLUMN, *BEHAVIORAL, *ATTITUDINAL, *DEMOGRAPHIC]
    for column in (*NUMERIC, "age"):
        assert pd.api.types.is_numeric_dtype(users[column]), column
    for column in (ID_COLUMN, "gender", "country", "occupation", "company_size"):
        assert pd.api.types.is_string_dtype(users[column]), column
    assert list(generate_users(200, seed=1, with_segment=True).columns)[-1] == "segment"


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 400), seed=st.integers(0, 2**32 - 1))
def test_generate_users_schema_is_stable_for_any_size(rows: int, seed: int) -> None:
    # The dtypes must not depend on whether a small sample happened to draw a NaN.
    users = generate_users(rows, seed)
    assert len(users) == rows
    assert users.dtypes.equals(generate_users(1000, 0).dtypes)
    assert users[ID_COLUMN].is_unique and users[ID_COLUMN].notna().all()


def test_generate_users_values_within_ranges(big: pd.DataFrame) -> None:
    for column, low, high in (("nps", 0, 10), ("satisfaction", 1, 5), ("age", 18, 80)):
        values = big[column].dropna()
        assert values.between(low, high).all(), column
        assert (values == values.round()).all(), column
    for column in COUNTS:
        assert (big[column] >= 0).all() and (big[column] == big[column].round()).all(), column
    assert big["tenure_months"].min() >= 1
    assert (big["avg_order_value"].dropna() > 0).all()
    assert (big["avg_session_minutes"].dropna() > 0).all()
    allowed = {
        "gender": GENDERS,
        "country": COUNTRIES,
        "occupation": OCCUPATIONS,
        "company_size": COMPANY_SIZES,
    }
    for column, labels in allowed.items():
        assert set(big[column].dropna()) == set(labels), column
    assert 0.01 < (big["gender"] == "non-binary").mean() < 0.08


def test_generate_users_missing_shares_within_bands(big: pd.DataFrame) -> None:
    missing = big.isna().mean()
    assert set(missing[missing > 0].index) == set(MISSING_SHARE)
    for column in MISSING_SHARE:
        assert 0.01 <= missing[column] <= 0.035, (column, missing[column])
    assert {c for c in MISSING_SHARE if c in DEMOGRAPHIC}, "a demographic column has gaps"


def test_generate_users_ids_are_unique_and_zero_padded() -> None:
    users = generate_users(1234, seed=2)
    assert users[ID_COLUMN].is_unique
    assert users[ID_COLUMN].str.fullmatch(r"u\d{6}").all()
    assert users[ID_COLUMN].iloc[0] == "u000001"


def test_generate_users_segment_shares_match_spec(big: pd.DataFrame) -> None:
    shares = big["segment"].value_counts(normalize=True)
    for spec in SEGMENTS:
        assert shares[spec.name] == pytest.approx(spec.share, abs=0.01), spec.name
    assert sum(s.share for s in SEGMENTS) == pytest.approx(1.0)


def test_generate_users_has_a_few_extreme_outliers(big: pd.DataFrame) -> None:
    for column in ("avg_order_value", "avg_session_minutes", "logins_per_month"):
        values = big[column].dropna()
        extreme = (values > 3 * values.quantile(0.99)).mean()
        assert 0 < extreme < 0.003, (column, extreme)


def test_generate_users_demographics_lean_by_segment(big: pd.DataFrame) -> None:
    by_segment = big.groupby("segment")
    students = by_segment["occupation"].apply(lambda s: (s == "student").mean())
    managers = by_segment["occupation"].apply(lambda s: (s == "manager").mean())
    assert students.idxmax() == "newcomers"
    assert managers.idxmax() == "big spenders"
    age = by_segment["age"].mean()
    assert age["support-heavy strugglers"] - age["newcomers"] > 15
    # A lean, not a rule: every occupation still appears in every segment.
    assert (pd.crosstab(big["segment"], big["occupation"]) > 0).all().all()


def test_generate_users_is_deterministic() -> None:
    pd.testing.assert_frame_equal(
        generate_users(500, seed=7, with_segment=True),
        generate_users(500, seed=7, with_segment=True),
    )


def test_generate_users_different_seeds_differ() -> None:
    a, b = generate_users(500, seed=1), generate_users(500, seed=2)
    assert not a.equals(b)
    assert (a["logins_per_month"] != b["logins_per_month"]).mean() > 0.5


@pytest.mark.parametrize("rows", [0, -3])
def test_generate_users_rejects_non_positive_rows(rows: int) -> None:
    with pytest.raises(ValueError, match=rf"rows must be .*>= 1.*got {rows}"):
        generate_users(rows)


def test_generate_users_kmeans_recovers_planted_segments(
    scaled_5000: tuple[np.ndarray, np.ndarray], one_thread: None
) -> None:
    X, truth = scaled_5000
    labels = KMeans(n_clusters=5, n_init=10, random_state=0).fit_predict(X)
    assert adjusted_rand_score(truth, labels) >= 0.8
    assert silhouette_score(X, truth) > 0.25


def test_generate_users_silhouette_picks_about_five_clusters(
    scaled_5000: tuple[np.ndarray, np.ndarray], one_thread: None
) -> None:
    X, _ = scaled_5000
    scores = {
        k: silhouette_score(X, KMeans(n_clusters=k, n_init=10, random_state=0).fit_predict(X))
        for k in range(2, 11)
    }
    assert max(scores, key=scores.__getitem__) in (4, 5, 6), scores


@pytest.mark.parametrize("suffix", sorted(READERS))
def test_write_sample_round_trips(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"users{suffix}"
    written = write_sample(path, rows=300, seed=4)
    assert "segment" not in written.columns
    back = READERS[suffix](path)
    pd.testing.assert_frame_equal(back, written, check_dtype=False, check_exact=False)
    assert back[ID_COLUMN].tolist() == written[ID_COLUMN].tolist()


def test_write_sample_csv_bytes_are_deterministic(tmp_path: Path) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    write_sample(first, rows=400, seed=9)
    write_sample(second, rows=400, seed=9)
    assert first.read_bytes() == second.read_bytes()


@pytest.mark.parametrize("name", ["users.txt", "users.xlsx", "users"])
def test_write_sample_rejects_unknown_extension(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="unsupported output format"):
        write_sample(tmp_path / name, rows=10)
    assert not (tmp_path / name).exists()


def test_write_sample_rejects_zero_rows(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="got 0"):
        write_sample(tmp_path / "users.csv", rows=0)


def test_write_sample_csv_writes_whole_numbers_without_decimals(tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    write_sample(path, rows=300, seed=5)
    raw = pd.read_csv(path, dtype=str)
    for column in ("nps", "satisfaction", "age"):
        assert raw[column].dropna().str.fullmatch(r"\d+").all(), column
