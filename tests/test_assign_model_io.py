"""The stored model: preprocessing as parameters, equal to scikit-learn, loaded without pickle."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from apg.config import FeaturesConfig, PreprocessingConfig
from apg.errors import DataError, StoreError
from apg.prepare.features import select_features
from apg.prepare.preprocessing import prepare, transform
from apg.search.clusters import ClusterModel
from apg.search.model_io import StoredModel, categorical_as_text, decode_array, from_fitted


def users(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "user_id": [f"u{seed}-{i}" for i in range(n)],
            "visits": rng.poisson(8, n).astype(float),
            "spend": rng.gamma(2.0, 30.0, n),
            "nps": rng.integers(0, 11, n).astype(float),
            "plan": rng.choice(["free", "pro", "team"], n),
        }
    )
    frame.loc[rng.choice(n, n // 10, replace=False), "spend"] = np.nan
    frame.loc[rng.choice(n, n // 20, replace=False), "plan"] = None
    return frame


def new_users() -> pd.DataFrame:
    frame = users(60, seed=9)
    frame.loc[0:4, "visits"] = np.nan  # missing numbers are imputed
    frame.loc[5:9, "plan"] = "enterprise"  # a category the model never saw
    frame.loc[10:12, "plan"] = None
    return frame


FEATURES = FeaturesConfig(behavioral=["visits", "spend", "plan"], attitudinal=["nps"])


def stored(prepared: object) -> StoredModel:
    X = prepared.X  # type: ignore[attr-defined]
    labels = (X[:, 0] > 0).astype(np.intp)
    cluster = ClusterModel.from_fit("kmeans", X, labels)
    model = from_fitted(prepared.transformer, cluster, "kmeans", {"k": 2}, X, labels)  # type: ignore[attr-defined]
    return StoredModel.from_json(model.to_json())  # through the stored form


@pytest.mark.parametrize("pca", [None, 2, 0.9])
@pytest.mark.parametrize("scaling", ["standard", "minmax", "robust"])
def test_model_io_transform_equals_sklearn(scaling: Any, pca: int | float | None) -> None:
    frame = select_features(users(300, seed=1), "user_id", FEATURES)
    prepared = prepare(frame, PreprocessingConfig(scaling=scaling, pca=pca), seed=0)
    model = stored(prepared)
    fresh = new_users()
    expected = transform(prepared, fresh)
    assert np.abs(model.transform(fresh) - expected).max() <= 1e-12
    assert np.abs(model.transform(users(300, seed=1)) - prepared.X).max() <= 1e-12


def test_model_io_transform_equals_sklearn_with_whitened_pca() -> None:
    data = categorical_as_text(users(300, seed=2), ["plan"])
    pipe = Pipeline(
        [
            (
                "columns",
                ColumnTransformer(
                    [
                        (
                            "num",
                            Pipeline(
                                [
                                    ("impute", SimpleImputer(strategy="mean")),
                                    ("scale", StandardScaler()),
                                ]
                            ),
                            ["visits", "spend", "nps"],
                        ),
                        (
                            "cat",
                            Pipeline(
                                [
                                    ("impute", SimpleImputer(strategy="most_frequent")),
                                    (
                                        "onehot",
                                        OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                                    ),
                                ]
                            ),
                            ["plan"],
                        ),
                    ],
                    verbose_feature_names_out=False,
                ),
            ),
            ("pca", PCA(n_components=3, whiten=True, random_state=0)),
        ]
    )
    X = pipe.fit_transform(data)
    labels = np.zeros(len(X), dtype=np.intp)
    model = from_fitted(pipe, ClusterModel.from_fit("kmeans", X, labels), "kmeans", {"k": 1})
    model = StoredModel.from_json(model.to_json())
    fresh = new_users()
    expected = pipe.transform(categorical_as_text(fresh, ["plan"]))
    assert np.abs(model.transform(fresh) - expected).max() <= 1e-12


def test_model_io_unknown_category_encodes_as_zeros() -> None:
    frame = select_features(users(300, seed=1), "user_id", FEATURES)
    model = stored(prepare(frame, PreprocessingConfig(), seed=0))
    X = model.transform(new_users())
    onehot = X[:, -3:]  # free, pro, team
    assert np.all(onehot[5:10] == 0)
    assert np.all(onehot[10:13].sum(axis=1) == 1)  # missing: the most frequent category


def test_model_io_stored_form_is_plain_json_without_pickle() -> None:
    frame = select_features(users(100, seed=1), "user_id", FEATURES)
    text = stored(prepare(frame, PreprocessingConfig(), seed=0)).to_json()
    doc = json.loads(text)
    assert doc["format"] == 1
    npy = base64.b64decode(doc["preprocessing"]["num_fill"]["npy"])
    assert npy.startswith(b"\x93NUMPY")
    assert np.load(io.BytesIO(npy), allow_pickle=False).shape == (3,)


def test_model_io_refuses_pickled_arrays() -> None:
    buf = io.BytesIO()
    np.save(buf, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    evil = {"npy": base64.b64encode(buf.getvalue()).decode()}
    with pytest.raises(StoreError, match=r"stored model is damaged: .*allow_pickle"):
        decode_array(evil)


def test_model_io_refuses_unknown_format_and_damage() -> None:
    with pytest.raises(StoreError, match="format 9 is not supported"):
        StoredModel.from_dict({"format": 9})
    with pytest.raises(StoreError, match="damaged: an array is not in"):
        StoredModel.from_dict({"format": 1, "model": {"kind": "core", "centers": None}})
    with pytest.raises(StoreError, match="damaged: missing or bad field 'model'"):
        StoredModel.from_dict({"format": 1})
    with pytest.raises(StoreError, match="not valid JSON"):
        StoredModel.from_json("{not json")


def test_model_io_missing_columns_are_a_data_error() -> None:
    frame = select_features(users(100, seed=1), "user_id", FEATURES)
    model = stored(prepare(frame, PreprocessingConfig(), seed=0))
    with pytest.raises(DataError, match=r"column\(s\) 'spend', 'plan' needed by the stored model"):
        model.transform(users(10, seed=3).drop(columns=["spend", "plan"]))
