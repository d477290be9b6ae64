"""Large inputs are fitted column by column; the result is scikit-learn's fit, bit for bit.

``prepare`` takes that path above ``TRANSFORM_CHUNK_ROWS`` rows; the tests lower the threshold
so a few hundred rows take it, and compare with one plain scikit-learn fit of the same steps.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, RobustScaler, StandardScaler

import apg.prepare.preprocessing
from apg.config import PreprocessingConfig
from apg.prepare.features import FeatureFrame
from apg.prepare.preprocessing import _fit_imputer, prepare, transform
from apg.search.clusters import ClusterModel
from apg.search.model_io import StoredModel, from_fitted, preprocessing_of

ROWS = 500
NUMERIC = ["logins", "minutes", "spend", "score", "flat"]
CATEGORICAL = ["plan", "region"]
SCALERS = {"standard": StandardScaler, "minmax": MinMaxScaler, "robust": RobustScaler}


@pytest.fixture(autouse=True)
def large(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(apg.prepare.preprocessing, "TRANSFORM_CHUNK_ROWS", 60)


@pytest.fixture
def columnwise(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each large fit went column by column (True) or fell back (False)."""
    taken: list[bool] = []
    real = apg.prepare.preprocessing._fit_by_column

    def spy(*args: Any) -> bool:
        taken.append(real(*args))
        return taken[-1]

    monkeypatch.setattr(apg.prepare.preprocessing, "_fit_by_column", spy)
    return taken


def table(seed: int = 0) -> pd.DataFrame:
    """Integers, floats with gaps, float32, nullable integers, a constant and text columns;
    one category appears only near the end."""
    rng = np.random.default_rng(seed)
    data = pd.DataFrame(
        {
            "user_id": [f"u{i:04d}" for i in range(ROWS)],
            "logins": rng.poisson(5, ROWS),
            "minutes": rng.lognormal(2.0, 1.0, ROWS),
            "spend": rng.gamma(2.0, 30.0, ROWS).astype(np.float32),
            "score": pd.array(rng.integers(0, 11, ROWS), dtype="Int64"),
            "flat": np.full(ROWS, 3.0),
            "plan": rng.choice(["free", "pro", "team"], ROWS, p=[0.25, 0.3, 0.45]).astype(object),
            "region": np.where(rng.random(ROWS) < 0.9, "north", "south").astype(object),
        }
    )
    data.loc[rng.choice(ROWS, 40, replace=False), "minutes"] = np.nan
    data.loc[rng.choice(ROWS, 30, replace=False), "score"] = pd.NA
    data.loc[rng.choice(ROWS, 25, replace=False), "plan"] = None
    data.loc[[0, 1, ROWS - 3], "region"] = ["north", "south", "east"]
    # The first row of each region is on the least frequent plan, so a fill value taken
    # from the rows that fix the structure would be another than the whole column's.
    data.loc[[0, 1, ROWS - 3], "plan"] = "free"
    return data


def frame_of(
    data: pd.DataFrame, numeric: list[str] = NUMERIC, categorical: list[str] = CATEGORICAL
) -> FeatureFrame:
    # Built directly: select_features would refuse the constant column.
    return FeatureFrame(
        ids=data["user_id"],
        raw=data[[*numeric, *categorical]],
        behavioral=[*numeric, *categorical],
        attitudinal=[],
        demographic=[],
        numeric_features=numeric,
        categorical_features=categorical,
        numeric_demographics=[],
    )


def sklearn_fit(
    data: pd.DataFrame,
    strategy: str,
    scaling: str,
    numeric: list[str] = NUMERIC,
    categorical: list[str] = CATEGORICAL,
) -> tuple[Pipeline, np.ndarray]:
    """The same steps fitted the plain way, on every row at once."""
    parts: list[tuple[str, Any, list[str]]] = []
    if numeric:
        steps = [("impute", SimpleImputer(strategy=strategy)), ("scale", SCALERS[scaling]())]
        parts.append(("num", Pipeline(steps), numeric))
    if categorical:
        onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
        steps = [("impute", SimpleImputer(strategy="most_frequent")), ("onehot", onehot)]
        parts.append(("cat", Pipeline(steps), categorical))
    text = {c: data[c].map(lambda v: np.nan if pd.isna(v) else str(v)) for c in categorical}
    pipe = Pipeline([("columns", ColumnTransformer(parts, verbose_feature_names_out=False))])
    X = pipe.fit_transform(data[[*numeric, *categorical]].assign(**text))
    return pipe, X


def fitted_state(pipe: Pipeline) -> dict[tuple[str, str, str], Any]:
    """Every fitted attribute of every step, by (part, step, attribute)."""
    state = {}
    for part, fitted, _cols in pipe.named_steps["columns"].transformers_:
        for step, est in getattr(fitted, "steps", []):
            for name, value in vars(est).items():
                if name.endswith("_") and not name.startswith("_"):
                    state[(part, step, name)] = value
    return state


def assert_same_state(got: Pipeline, expected: Pipeline) -> None:
    a, b = fitted_state(got), fitted_state(expected)
    assert a.keys() == b.keys()
    for key, value in b.items():
        if isinstance(value, np.ndarray):
            assert type(a[key]) is np.ndarray and a[key].dtype == value.dtype, key
            assert np.array_equal(a[key], value, equal_nan=value.dtype.kind == "f"), key
        elif isinstance(value, list):  # categories_: one array per column
            assert len(a[key]) == len(value), key
            assert all(np.array_equal(x, y) for x, y in zip(a[key], value, strict=True)), key
        else:
            assert type(a[key]) is type(value) and a[key] == value, key


@pytest.mark.parametrize(
    ("missing", "strategy", "scaling"),
    [
        ("impute_median", "median", "standard"),
        ("impute_mean", "mean", "standard"),
        ("impute_median", "median", "minmax"),
        ("impute_mean", "mean", "minmax"),
        ("impute_median", "median", "robust"),
        ("impute_mean", "mean", "robust"),
    ],
)
def test_columnwise_fit_equals_one_sklearn_fit_bit_for_bit(
    columnwise: list[bool], missing: str, strategy: str, scaling: str
) -> None:
    data = table()
    config = PreprocessingConfig(transform="none", missing=missing, scaling=scaling)  # type: ignore[arg-type]
    prepared = prepare(frame_of(data), config)
    pipe, expected = sklearn_fit(data, strategy, scaling)
    assert columnwise == [True]
    assert np.array_equal(prepared.X, expected)
    assert_same_state(prepared.transformer, pipe)
    assert prepared.columns == [
        *NUMERIC,
        "plan_free",
        "plan_pro",
        "plan_team",
        "region_east",
        "region_north",
        "region_south",
    ]
    # The fitted transform applied to rows again gives the same rows.
    assert np.array_equal(transform(prepared, data.iloc[100:250]), prepared.X[100:250])


@pytest.mark.parametrize("scaling", ["standard", "robust"])
def test_columnwise_fit_of_only_numeric_or_only_categorical_columns(
    columnwise: list[bool], scaling: str
) -> None:
    data = table(seed=1)
    config = PreprocessingConfig(transform="none", scaling=scaling)  # type: ignore[arg-type]
    for numeric, categorical in ([NUMERIC, []], [[], CATEGORICAL]):
        prepared = prepare(frame_of(data, numeric, categorical), config)
        pipe, expected = sklearn_fit(data, "median", scaling, numeric, categorical)
        assert np.array_equal(prepared.X, expected)
        assert_same_state(prepared.transformer, pipe)
    assert columnwise == [True, True]


def test_row_major_frame_falls_back_to_one_fit(columnwise: list[bool]) -> None:
    """A frame over a C-ordered array reaches scikit-learn row-major; its axis-0 sums then add
    in another order than a column's, so the plain fit is used."""
    rng = np.random.default_rng(2)
    values = rng.lognormal(0.0, 1.0, size=(ROWS, 3))
    values[rng.random(values.shape) < 0.05] = np.nan
    data = pd.DataFrame(values, columns=["a", "b", "c"], copy=False)
    data.insert(0, "user_id", [f"u{i}" for i in range(ROWS)])
    frame = frame_of(data, ["a", "b", "c"], [])
    transformer = apg.prepare.preprocessing.build_transformer(
        frame, PreprocessingConfig(transform="none"), 0
    )
    assert not apg.prepare.preprocessing._fit_by_column(transformer, data[["a", "b", "c"]], frame)
    prepared = prepare(frame, PreprocessingConfig(transform="none"))
    assert columnwise == [False, False]
    pipe, expected = sklearn_fit(data, "median", "standard", ["a", "b", "c"], [])
    assert np.array_equal(prepared.X, expected)
    assert_same_state(prepared.transformer, pipe)


def test_all_missing_column_falls_back_to_one_fit(columnwise: list[bool]) -> None:
    """scikit-learn drops an all-missing column (with a warning); the plain fit does that."""
    data = table().assign(empty=np.nan)
    numeric = [*NUMERIC, "empty"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        prepared = prepare(frame_of(data, numeric), PreprocessingConfig(transform="none"))
        _pipe, expected = sklearn_fit(data, "median", "standard", numeric)
    assert columnwise == [False]
    assert np.array_equal(prepared.X, expected)
    assert "empty" not in prepared.columns


def test_stored_model_of_a_columnwise_fit_assigns_like_sklearn_after_reload(
    columnwise: list[bool],
) -> None:
    data = table(seed=3)
    prepared = prepare(frame_of(data), PreprocessingConfig(transform="none"))
    pipe, expected = sklearn_fit(data, "median", "standard")
    assert columnwise == [True]
    km = KMeans(n_clusters=3, n_init=2, random_state=0).fit(expected)
    labels = km.labels_.astype(np.intp)
    cluster = ClusterModel.from_fit("kmeans", expected, labels, km.cluster_centers_)
    # The stored parameters are those of the plain fit, to the bit (JSON of the same arrays).
    assert preprocessing_of(prepared.transformer).to_dict() == preprocessing_of(pipe).to_dict()
    model = from_fitted(prepared.transformer, cluster, "kmeans", {"k": 3}, prepared.X, labels)
    loaded = StoredModel.from_json(model.to_json())
    assert loaded.training_agreement == 1.0
    assert np.array_equal(loaded.assign(data), labels)
    assert np.abs(loaded.transform(data) - expected).max() <= 1e-12


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(min_value=-1e300, max_value=1e300, width=64),
            st.sampled_from([0.0, -0.0, 1.0, 2.5, np.nan]),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_partition_median_equals_sklearns_masked_median(values: list[float]) -> None:
    x = np.array(values, dtype=np.float64)[:, None]
    if np.isnan(x).all():
        return  # all-missing columns take the plain fit (covered above)
    ours = _fit_imputer(SimpleImputer(strategy="median"), x)
    theirs = SimpleImputer(strategy="median").fit(x)
    np.testing.assert_array_equal(ours.statistics_, theirs.statistics_)
    np.testing.assert_array_equal(ours.transform(x), theirs.transform(x))
