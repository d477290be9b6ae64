"""Skew transforms before scaling: each kind against numpy/scikit-learn, the auto rule, the
column-wise fit, the stored model, profiles in raw units, and the errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.preprocessing import PowerTransformer, StandardScaler

import apg.prepare.preprocessing
from apg.config import FeaturesConfig, PreprocessingConfig
from apg.errors import DataError
from apg.prepare.features import select_features
from apg.prepare.preprocessing import prepare
from apg.prepare.transforms import SkewTransform, yeo_johnson
from apg.profiles.persona import build_profiles
from apg.search.clusters import ClusterModel
from apg.search.model_io import StoredModel, from_fitted


def table(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "user_id": [f"u{i:04d}" for i in range(n)],
            "spend": rng.lognormal(3.0, 1.2, n),  # heavy right tail, no negatives
            "balance": rng.lognormal(2.0, 1.0, n) - 3.0,  # heavy tail with negatives
            "score": rng.normal(50, 10, n),  # symmetric
            "flag": (rng.random(n) < 0.03).astype(float),  # a rare 0/1 flag
            "plan": rng.choice(["basic", "pro"], n),
        }
    )


def prepared_of(frame: pd.DataFrame, **config: object):  # type: ignore[no-untyped-def]
    features = select_features(
        frame,
        "user_id",
        FeaturesConfig(behavioral=["spend", "balance", "score", "flag", "plan"]),
    )
    return prepare(features, PreprocessingConfig(**config))


def test_transforms_log1p_and_winsorize_match_numpy() -> None:
    x = table()["spend"].to_numpy()
    t = SkewTransform(columns=["a", "b"], overrides={"a": "log1p", "b": "winsorize"})
    out = t.fit_transform(np.column_stack([x, x]))
    assert np.array_equal(out[:, 0], np.log1p(x))
    lo, hi = np.quantile(x, [0.01, 0.99])
    assert np.array_equal(out[:, 1], np.clip(x, lo, hi))


def test_transforms_yeo_johnson_matches_scikit_learn() -> None:
    x = table()["balance"].to_numpy().reshape(-1, 1)
    ours = SkewTransform(columns=["b"], overrides={"b": "yeo-johnson"}).fit(x)
    theirs = PowerTransformer(method="yeo-johnson", standardize=False).fit(x)
    assert ours.lambdas_[0] == theirs.lambdas_[0]
    np.testing.assert_allclose(ours.transform(x), theirs.transform(x), rtol=1e-12, atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(
    lmbda=st.floats(-2.5, 4.5, allow_nan=False),
    values=st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=30),
)
def test_transforms_yeo_johnson_formula_equals_scikit_learn_for_any_lambda(
    lmbda: float, values: list[float]
) -> None:
    x = np.array(values)
    pt = PowerTransformer(method="yeo-johnson", standardize=False)
    pt.lambdas_ = np.array([lmbda])
    pt.n_features_in_ = 1
    expected = pt.transform(x.reshape(-1, 1))[:, 0]
    np.testing.assert_allclose(yeo_johnson(x, lmbda), expected, rtol=1e-9, atol=1e-9)


def test_transforms_auto_picks_by_pandas_skewness_and_leaves_flags_alone() -> None:
    frame = table()
    cols = ["spend", "balance", "score", "flag"]
    t = SkewTransform(columns=cols, mode="auto", threshold=1.0).fit(frame[cols].to_numpy())
    skew = frame[cols].skew()
    assert skew["spend"] > 1 and skew["balance"] > 1 and abs(skew["score"]) < 1
    assert skew["flag"] > 1  # skewed, but two-valued: not a tail
    assert list(t.kinds_) == ["log1p", "yeo-johnson", "none", "none"]
    np.testing.assert_allclose(t.skew_before_, skew.to_numpy(), rtol=1e-9)
    assert [r["column"] for r in t.report()] == ["spend", "balance"]
    assert all(abs(r["skew_after"]) < abs(r["skew_before"]) for r in t.report())


def test_transforms_override_wins_over_auto_and_none_mode_changes_nothing() -> None:
    frame = table()
    t = SkewTransform(columns=["spend"], mode="auto", overrides={"spend": "none"})
    assert list(t.fit(frame[["spend"]].to_numpy()).kinds_) == ["none"]
    plain = prepared_of(frame, transform="none")
    assert plain.transforms == []
    assert (
        "transform"
        not in plain.transformer.named_steps["columns"].named_transformers_["num"].named_steps
    )


def test_transforms_prepare_matches_an_independent_log_then_scale() -> None:
    frame = table()
    prepared = prepared_of(frame, transform="auto")
    numeric = ["spend", "balance", "score"]
    expected = frame[numeric].copy()
    expected["spend"] = np.log1p(expected["spend"])
    yj = PowerTransformer(method="yeo-johnson", standardize=False)
    expected["balance"] = yj.fit_transform(expected[["balance"]])[:, 0]
    scaled = StandardScaler().fit_transform(expected)
    idx = [prepared.columns.index(c) for c in numeric]
    np.testing.assert_allclose(prepared.X[:, idx], scaled, rtol=1e-9, atol=1e-9)
    # The two-valued flag is neither transformed nor standardised (README "Two-valued").
    flag = prepared.X[:, prepared.columns.index("flag_1")]
    np.testing.assert_array_equal(flag, np.where(frame["flag"] == 1, np.sqrt(2), 0.0))
    assert [(t["column"], t["transform"]) for t in prepared.transforms] == [
        ("spend", "log1p"),
        ("balance", "yeo-johnson"),
    ]


def test_transforms_profiles_stay_in_raw_units() -> None:
    frame = table()
    prepared = prepared_of(frame, transform="auto")
    labels = (frame["spend"] > frame["spend"].median()).to_numpy().astype(np.intp)
    personas, _ = build_profiles(prepared.frame, prepared.X, labels)
    means = frame.groupby(labels)["spend"].mean()
    for p in personas:
        assert p.centroid["spend"] == pytest.approx(means[p.cluster], rel=1e-12)


def test_transforms_columnwise_fit_is_bit_identical(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = table(900)
    whole = prepared_of(frame, transform="auto", transforms={"score": "winsorize"})
    monkeypatch.setattr(apg.prepare.preprocessing, "TRANSFORM_CHUNK_ROWS", 100)
    by_column = prepared_of(frame, transform="auto", transforms={"score": "winsorize"})
    assert np.array_equal(whole.X, by_column.X)
    assert whole.transforms == by_column.transforms


def test_transforms_stored_model_places_users_like_the_run() -> None:
    frame = table()
    prepared = prepared_of(frame, transform="auto", transforms={"score": "winsorize"})
    labels = np.arange(len(frame), dtype=np.intp) % 3
    cluster = ClusterModel.from_fit("kmeans", prepared.X, labels, centers=None)
    model = from_fitted(prepared.transformer, cluster, "kmeans", {"k": 3})
    loaded = StoredModel.from_json(json.dumps(model.to_dict()))
    new = table(200, seed=5).drop(columns="user_id")
    np.testing.assert_allclose(
        loaded.transform(new),
        apg.prepare.preprocessing.transform(prepared, new),
        rtol=1e-12,
        atol=1e-12,
    )


@pytest.mark.parametrize(
    ("transforms", "message"),
    [
        (
            {"plan": "log1p"},
            "preprocessing.transforms: 'plan' is a text column (transforms apply to numbers); "
            "numeric clustering columns are 'spend', 'balance', 'score', 'flag'",
        ),
        (
            {"age": "log1p"},
            "preprocessing.transforms: 'age' is not a clustering column; numeric clustering "
            "columns are 'spend', 'balance', 'score', 'flag'",
        ),
    ],
)
def test_transforms_on_a_wrong_column_is_an_error_naming_it(
    transforms: dict[str, str], message: str
) -> None:
    with pytest.raises(DataError) as err:
        prepared_of(table(), transforms=transforms)
    assert str(err.value) == message


def test_transforms_bad_winsorize_quantiles_are_a_config_error() -> None:
    with pytest.raises(ValueError, match=r"winsorize quantiles \[0.9, 0.1\] must satisfy"):
        PreprocessingConfig(winsorize=(0.9, 0.1))
