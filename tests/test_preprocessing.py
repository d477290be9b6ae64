"""The clustering matrix: only the configured transforms, checked against scikit-learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

from apg.config import FeaturesConfig, PreprocessingConfig
from apg.errors import DataError
from apg.prepare.features import FeatureFrame, select_features
from apg.prepare.preprocessing import prepare, transform

NUMERIC = ["logins_per_month", "avg_session_minutes", "avg_order_value", "nps"]


@pytest.fixture
def users(sample_users: pd.DataFrame) -> pd.DataFrame:
    return sample_users.head(400).reset_index(drop=True)


def frame_of(users: pd.DataFrame, behavioral: list[str] | None = None) -> FeatureFrame:
    roles = FeaturesConfig(
        behavioral=behavioral or NUMERIC[:3],
        attitudinal=["nps"],
        demographic=["age", "country", "occupation"],
    )
    return select_features(users, "user_id", roles)


def reference(users: pd.DataFrame, strategy: str, scaler: object) -> np.ndarray:
    values = users[NUMERIC].to_numpy(dtype=float)
    imputed = SimpleImputer(strategy=strategy).fit_transform(values)
    return scaler.fit_transform(imputed)  # type: ignore[attr-defined]


def test_prepare_median_impute_then_standard_scale_without_transforms(users: pd.DataFrame) -> None:
    prepared = prepare(frame_of(users), PreprocessingConfig(transform="none"))
    np.testing.assert_allclose(prepared.X, reference(users, "median", StandardScaler()))
    assert prepared.columns == NUMERIC
    assert prepared.rows_dropped == 0
    assert prepared.pca_variance is None


def test_prepare_reports_imputed_counts_per_column(users: pd.DataFrame) -> None:
    prepared = prepare(frame_of(users), PreprocessingConfig(transform="none"))
    counts = users[NUMERIC].isna().sum()
    assert prepared.imputed == {c: int(n) for c, n in counts.items() if n > 0}
    assert prepared.imputed  # the sample has missing values in these columns


def test_prepare_median_imputation_fills_with_the_column_median(users: pd.DataFrame) -> None:
    prepared = prepare(frame_of(users), PreprocessingConfig(transform="none", scaling="minmax"))
    col = NUMERIC.index("avg_order_value")
    raw = users["avg_order_value"]
    lo, hi = raw.min(), raw.max()
    expected = (raw.median() - lo) / (hi - lo)
    np.testing.assert_allclose(prepared.X[raw.isna().to_numpy(), col], expected)


def test_prepare_with_transform_none_applies_no_other_transform(users: pd.DataFrame) -> None:
    """No clipping or log: the largest raw value keeps its z-score."""
    prepared = prepare(frame_of(users), PreprocessingConfig(transform="none"))
    raw = users["avg_order_value"]
    filled = raw.fillna(raw.median())
    z_max = (filled.max() - filled.mean()) / filled.std(ddof=0)
    assert prepared.X[:, NUMERIC.index("avg_order_value")].max() == pytest.approx(z_max)
    np.testing.assert_allclose(prepared.X.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(prepared.X.std(axis=0), 1, rtol=1e-12)


@pytest.mark.parametrize(
    ("missing", "scaling", "strategy", "scaler"),
    [
        ("impute_mean", "standard", "mean", StandardScaler),
        ("impute_median", "minmax", "median", MinMaxScaler),
        ("impute_median", "robust", "median", RobustScaler),
    ],
)
def test_prepare_configured_imputer_and_scaler_match_sklearn(
    users: pd.DataFrame, missing: str, scaling: str, strategy: str, scaler: type
) -> None:
    config = PreprocessingConfig(transform="none", missing=missing, scaling=scaling)  # type: ignore[arg-type]
    prepared = prepare(frame_of(users), config)
    np.testing.assert_allclose(prepared.X, reference(users, strategy, scaler()))


def test_prepare_drop_rows_drops_incomplete_rows_and_keeps_alignment(users: pd.DataFrame) -> None:
    prepared = prepare(frame_of(users), PreprocessingConfig(transform="none", missing="drop_rows"))
    complete = users[NUMERIC].notna().all(axis=1)
    assert prepared.rows_dropped == int((~complete).sum()) > 0
    assert prepared.imputed == {}
    kept = users[complete].reset_index(drop=True)
    assert prepared.X.shape == (len(kept), len(NUMERIC))
    assert list(prepared.frame.ids) == list(kept["user_id"])
    pd.testing.assert_series_equal(prepared.frame.raw["age"], kept["age"])
    np.testing.assert_allclose(prepared.X, StandardScaler().fit_transform(kept[NUMERIC]))


def test_prepare_drop_rows_with_too_few_complete_rows_is_an_error(users: pd.DataFrame) -> None:
    data = users.head(30).copy()
    data.loc[3:, "avg_order_value"] = np.nan  # 3 complete rows left
    with pytest.raises(DataError) as info:
        prepare(frame_of(data), PreprocessingConfig(transform="none", missing="drop_rows"))
    assert str(info.value) == (
        "preprocessing.missing=drop_rows leaves 3 complete row(s) of 30; at least 10 are "
        "needed. Use impute_median instead"
    )


def test_prepare_one_hot_encodes_categorical_features(users: pd.DataFrame) -> None:
    frame = frame_of(users, behavioral=["logins_per_month", "gender"])
    prepared = prepare(frame, PreprocessingConfig(transform="none"))
    dummies = pd.get_dummies(users["gender"], prefix="gender", dtype=float)
    assert prepared.columns == ["logins_per_month", "nps", *dummies.columns]
    np.testing.assert_array_equal(prepared.X[:, 2:], dummies.to_numpy())
    num = SimpleImputer(strategy="median").fit_transform(users[["logins_per_month", "nps"]])
    np.testing.assert_allclose(prepared.X[:, :2], StandardScaler().fit_transform(num))


def test_prepare_categorical_missing_takes_the_most_frequent_category(
    users: pd.DataFrame,
) -> None:
    data = users.copy()
    data["plan"] = np.where(np.arange(len(data)) % 3 == 0, "pro", "free")
    data.loc[[1, 2], "plan"] = None
    frame = frame_of(data, behavioral=["logins_per_month", "plan"])
    prepared = prepare(frame, PreprocessingConfig(transform="none"))
    free = prepared.columns.index("plan_free")
    assert prepared.columns[-2:] == ["plan_free", "plan_pro"]
    assert prepared.X[1, free] == 1.0 and prepared.X[2, free] == 1.0
    assert prepared.imputed["plan"] == 2


def test_prepare_matrix_never_contains_demographics_or_id(users: pd.DataFrame) -> None:
    prepared = prepare(
        frame_of(users, ["logins_per_month", "gender"]), PreprocessingConfig(transform="none")
    )
    for col in ["age", "country", "occupation", "user_id"]:
        assert not any(c == col or c.startswith(f"{col}_") for c in prepared.columns)


@pytest.mark.parametrize("n_components", [2, 3])
def test_prepare_pca_components_match_sklearn(users: pd.DataFrame, n_components: int) -> None:
    prepared = prepare(
        frame_of(users), PreprocessingConfig(transform="none", pca=n_components), seed=0
    )
    scaled = reference(users, "median", StandardScaler())
    pca = PCA(n_components=n_components, random_state=0).fit(scaled)
    assert prepared.columns == [f"pc{i + 1}" for i in range(n_components)]
    np.testing.assert_allclose(prepared.pca_variance, pca.explained_variance_ratio_)
    np.testing.assert_allclose(prepared.X, pca.transform(scaled), atol=1e-10)


def test_prepare_pca_variance_share_keeps_enough_components(users: pd.DataFrame) -> None:
    prepared = prepare(frame_of(users), PreprocessingConfig(transform="none", pca=0.8))
    full = PCA().fit(reference(users, "median", StandardScaler())).explained_variance_ratio_
    needed = int(np.searchsorted(np.cumsum(full), 0.8) + 1)
    assert prepared.X.shape[1] == needed
    assert sum(prepared.pca_variance or []) >= 0.8


def test_prepare_pca_with_too_many_components_is_an_error(users: pd.DataFrame) -> None:
    with pytest.raises(DataError) as info:
        prepare(frame_of(users), PreprocessingConfig(transform="none", pca=9))
    assert str(info.value).startswith("preprocessing failed: n_components=9 must be between")


def test_transform_applies_the_fitted_transform_to_new_rows(users: pd.DataFrame) -> None:
    prepared = prepare(
        frame_of(users, ["logins_per_month", "gender"]), PreprocessingConfig(transform="none")
    )
    new = users.head(25)
    np.testing.assert_allclose(transform(prepared, new), prepared.X[:25])


@pytest.mark.parametrize("scaling", ["standard", "minmax", "robust"])
def test_prepare_in_blocks_equals_one_fit_transform(
    users: pd.DataFrame, scaling: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import apg.prepare.preprocessing

    monkeypatch.setattr(apg.prepare.preprocessing, "TRANSFORM_CHUNK_ROWS", 37)
    frame = frame_of(users)
    got = prepare(frame, PreprocessingConfig(transform="none", scaling=scaling)).X  # type: ignore[arg-type]
    scaler = {"standard": StandardScaler, "minmax": MinMaxScaler, "robust": RobustScaler}[scaling]
    imputed = SimpleImputer(strategy="median").fit_transform(frame.raw[frame.features])
    np.testing.assert_array_equal(got, scaler().fit_transform(imputed))
