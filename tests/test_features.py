"""Column roles: validation of the user table and the split into clustering/demographic columns."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apg.config import FeaturesConfig
from apg.errors import DataError
from apg.prepare.features import MIN_ROWS, select_features
from apg.sources.sample import ATTITUDINAL, BEHAVIORAL, DEMOGRAPHIC


def table(n: int = 20) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        {
            "id": [f"u{i:03d}" for i in range(n)],
            "spend": rng.normal(50, 10, n).round(2),
            "visits": rng.integers(0, 30, n),
            "plan": ["free", "pro", "team", "pro"] * (n // 4),
            "nps": rng.integers(0, 11, n),
            "age": rng.integers(18, 70, n),
            "country": ["US", "DE"] * (n // 2),
        }
    )


ROLES = FeaturesConfig(
    behavioral=["spend", "visits", "plan"], attitudinal=["nps"], demographic=["age", "country"]
)


def data_error(frame: pd.DataFrame, features: FeaturesConfig = ROLES, **kw: object) -> str:
    with pytest.raises(DataError) as info:
        select_features(frame, "id", features, **kw)  # type: ignore[arg-type]
    return str(info.value)


# --------------------------------------------------------------------------- roles


def test_select_features_splits_columns_by_role_and_type() -> None:
    frame = select_features(table(), "id", ROLES)
    assert frame.behavioral == ["spend", "visits", "plan"]
    assert frame.attitudinal == ["nps"]
    assert frame.features == ["spend", "visits", "plan", "nps"]
    assert frame.demographic == ["age", "country"]
    assert frame.numeric_features == ["spend", "visits", "nps"]
    assert frame.categorical_features == ["plan"]
    assert frame.numeric_demographics == ["age"]
    assert frame.dropped_columns == []
    assert frame.role_of("nps") == "attitudinal"
    assert frame.role_of("spend") == "behavioral"


def test_select_features_id_and_demographics_are_never_features() -> None:
    frame = select_features(table(), "id", ROLES)
    assert "id" not in frame.raw.columns
    assert "id" not in frame.features
    assert not set(frame.demographic) & set(frame.features)
    assert not set(frame.demographic) & set(frame.numeric_features + frame.categorical_features)


def test_select_features_keeps_raw_values_unmodified() -> None:
    src = table()
    src.loc[[2, 5], "spend"] = np.nan
    frame = select_features(src, "id", ROLES)
    pd.testing.assert_frame_equal(
        frame.raw, src[["spend", "visits", "plan", "nps", "age", "country"]]
    )
    pd.testing.assert_series_equal(frame.ids, src["id"])


def test_select_features_ignores_unlisted_columns() -> None:
    src = table().assign(extra=1.0)
    frame = select_features(src, "id", ROLES)
    assert "extra" not in frame.raw.columns


def test_select_features_subset_keeps_rows_aligned() -> None:
    frame = select_features(table(), "id", ROLES)
    keep = frame.raw["visits"] > 10
    sub = frame.subset(keep)
    assert list(sub.ids) == list(table()["id"][keep])
    assert sub.raw["spend"].tolist() == table()["spend"][keep].tolist()
    assert sub.raw.index.tolist() == list(range(int(keep.sum())))


def test_select_features_on_sample_users_types_columns(sample_users: pd.DataFrame) -> None:
    roles = FeaturesConfig(
        behavioral=list(BEHAVIORAL), attitudinal=list(ATTITUDINAL), demographic=list(DEMOGRAPHIC)
    )
    frame = select_features(sample_users, "user_id", roles)
    assert frame.numeric_features == [*BEHAVIORAL, *ATTITUDINAL]
    assert frame.categorical_features == []
    assert frame.numeric_demographics == ["age"]
    assert len(frame.raw) == len(sample_users)


# --------------------------------------------------------------------------- bad input


def test_select_features_missing_id_column_lists_columns() -> None:
    src = table().rename(columns={"id": "uid"})
    assert data_error(src) == (
        "the data: id column 'id' not found; columns are 'uid', 'spend', 'visits', 'plan', "
        "'nps', 'age', 'country'"
    )


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        (
            FeaturesConfig(behavioral=["spend", "spendd", "x"]),
            "the data: behavioral column(s) 'spendd', 'x' not found",
        ),
        (
            FeaturesConfig(behavioral=["spend"], attitudinal=["csat"]),
            "the data: attitudinal column(s) 'csat' not found",
        ),
        (
            FeaturesConfig(behavioral=["spend"], demographic=["gender"]),
            "the data: demographic column(s) 'gender' not found",
        ),
    ],
)
def test_select_features_absent_column_is_named_and_columns_listed(
    roles: FeaturesConfig, expected: str
) -> None:
    assert data_error(table(), roles) == (
        f"{expected}; columns are 'id', 'spend', 'visits', 'plan', 'nps', 'age', 'country'"
    )


def test_select_features_origin_prefixes_messages() -> None:
    src = table().drop(columns=["nps"])
    with pytest.raises(DataError, match=r"^users\.csv: attitudinal column\(s\) 'nps' not found"):
        select_features(src, "id", ROLES, origin="users.csv")


def test_select_features_duplicate_ids_names_a_few() -> None:
    src = table(40)
    src.loc[10:17, "id"] = [f"u{i:03d}" for i in range(8)]  # eight ids appear twice
    message = data_error(src)
    assert message == (
        "the data: id column 'id' has 8 duplicate id(s), e.g. 'u000', 'u001', 'u002', 'u003', "
        "'u004' (+3 more); each user must appear once"
    )


def test_select_features_empty_ids_are_an_error() -> None:
    src = table()
    src["id"] = src["id"].astype(object)
    src.loc[[3, 4], "id"] = None
    assert data_error(src) == (
        "the data: id column 'id' is empty in 2 row(s); every user needs an id"
    )


@pytest.mark.parametrize("n", [1, 5, MIN_ROWS - 1])
def test_select_features_too_few_rows_is_an_error(n: int) -> None:
    src = table(20).head(n)
    assert data_error(src) == (
        f"the data: {n} row(s) is too few to cluster; at least {MIN_ROWS} are needed"
    )


def test_select_features_min_rows_is_enough() -> None:
    roles = FeaturesConfig(behavioral=["spend"])
    frame = select_features(table(20).head(MIN_ROWS), "id", roles)
    assert len(frame.raw) == MIN_ROWS


def test_select_features_text_in_numeric_column_names_column_and_value() -> None:
    src = table()
    src["spend"] = src["spend"].astype(object)
    src.loc[7, "spend"] = "12,50 EUR"
    assert data_error(src) == (
        "the data: column 'spend' is numeric but has non-numeric text, e.g. '12,50 EUR'; "
        "clean the value or mark it missing"
    )


def test_select_features_text_in_numeric_column_read_from_csv() -> None:
    src = table()
    src["visits"] = src["visits"].astype(object)
    src.loc[3, "visits"] = "twelve"
    src.to_csv("t.csv", index=False)
    back = pd.read_csv("t.csv")
    assert data_error(back) == (
        "the data: column 'visits' is numeric but has non-numeric text, e.g. 'twelve'; "
        "clean the value or mark it missing"
    )


def test_select_features_all_missing_column_is_an_error() -> None:
    src = table().assign(nps=np.nan)
    assert data_error(src) == (
        "the data: column 'nps' is entirely missing and cannot separate users; remove it from "
        "features or set preprocessing.degenerate_columns: drop"
    )


def test_select_features_constant_text_column_is_an_error() -> None:
    src = table().assign(plan="pro")
    assert data_error(src) == (
        "the data: column 'plan' is constant ('pro' in every row) and cannot separate users; "
        "remove it from features or set preprocessing.degenerate_columns: drop"
    )


def test_select_features_constant_numeric_column_message_shows_plain_value() -> None:
    src = table().assign(visits=3)
    assert data_error(src) == (
        "the data: column 'visits' is constant (3 in every row) and cannot separate users; "
        "remove it from features or set preprocessing.degenerate_columns: drop"
    )


def test_select_features_constant_numeric_column_is_an_error_naming_it() -> None:
    src = table().assign(visits=3)
    message = data_error(src)
    assert message.startswith("the data: column 'visits' is constant (")
    assert message.endswith(
        "in every row) and cannot separate users; remove it from features or set "
        "preprocessing.degenerate_columns: drop"
    )


def test_select_features_constant_with_missing_counts_as_constant() -> None:
    src = table()
    src["nps"] = np.where(np.arange(len(src)) % 2 == 0, 7.0, np.nan)
    assert data_error(src).startswith("the data: column 'nps' is constant (")


def test_select_features_degenerate_drop_warns_and_drops() -> None:
    src = table().assign(nps=np.nan, plan="pro")
    with pytest.warns(UserWarning) as record:
        frame = select_features(src, "id", ROLES, degenerate="drop")
    messages = [str(w.message) for w in record]
    assert messages == [
        "the data: dropped column 'plan': it is constant ('pro' in every row)",
        "the data: dropped column 'nps': it is entirely missing",
    ]
    assert frame.dropped_columns == ["plan", "nps"]
    assert frame.behavioral == ["spend", "visits"]
    assert frame.attitudinal == []
    assert frame.features == ["spend", "visits"]
    assert list(frame.raw.columns) == ["spend", "visits", "age", "country"]


def test_select_features_degenerate_drop_of_everything_is_an_error() -> None:
    src = table().assign(spend=np.nan, visits=1, plan=None, nps=np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        message = data_error(src, degenerate="drop")
    assert message == "the data: every clustering column was dropped; nothing left to cluster"


def test_select_features_constant_demographic_is_allowed() -> None:
    src = table().assign(country="US")
    frame = select_features(src, "id", ROLES)
    assert frame.demographic == ["age", "country"]


def test_select_features_numbers_stored_as_text_are_numeric_with_a_warning() -> None:
    src = table()
    expected = src["spend"].astype(float)
    src["spend"] = src["spend"].astype(str).astype(object)
    with pytest.warns(UserWarning, match="column 'spend' holds numbers stored as text"):
        frame = select_features(src, "id", ROLES)
    assert "spend" in frame.numeric_features
    pd.testing.assert_series_equal(frame.raw["spend"].astype(float), expected, check_names=False)


# --------------------------------------------------------------------------- property-based

_JUNK = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12
).filter(lambda s: pd.isna(pd.to_numeric(pd.Series([s.strip()]), errors="coerce").iloc[0]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    column=st.sampled_from(["spend", "visits", "nps"]),
    junk=st.lists(_JUNK, min_size=1, max_size=4),
    rows=st.lists(st.integers(0, 19), min_size=1, max_size=4, unique=True),
)
def test_select_features_junk_in_numeric_column_names_the_column(
    column: str, junk: list[str], rows: list[int]
) -> None:
    src = table()
    src[column] = src[column].astype(object)
    for i, row in enumerate(rows):
        src.loc[row, column] = junk[i % len(junk)]
    with pytest.raises(DataError) as info:
        select_features(src, "id", ROLES)
    message = str(info.value)
    assert message.startswith(f"the data: column {column!r} is numeric but has non-numeric text")
    first_bad = src[column][src[column].map(lambda v: isinstance(v, str))]
    first_bad = first_bad.sort_index().iloc[0]
    assert f"e.g. {first_bad.strip()!r}" in message
