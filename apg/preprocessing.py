"""Turn the clustering columns into the matrix the algorithms see.

Only configured transforms are applied: imputation, one-hot encoding of categorical columns,
one scaler, optional PCA. No silent log transforms or clipping.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, RobustScaler, StandardScaler
from sklearn.utils.validation import FLOAT_DTYPES, check_array

from apg.config import PreprocessingConfig
from apg.errors import DataError
from apg.features import MIN_ROWS, FeatureFrame

_SCALERS = {"standard": StandardScaler, "minmax": MinMaxScaler, "robust": RobustScaler}


@dataclass
class Prepared:
    """The clustering matrix and how it was made."""

    X: np.ndarray
    frame: FeatureFrame  # the rows behind X (after drop_rows), aligned with X
    transformer: Pipeline
    columns: list[str]  # names of X's columns (after one-hot; PCA gives pc1..pcN)
    rows_dropped: int = 0
    imputed: dict[str, int] = field(default_factory=dict)
    pca_variance: list[float] | None = None


TRANSFORM_CHUNK_ROWS = 100_000


def _transform_in_blocks(transformer: Pipeline, data: pd.DataFrame) -> np.ndarray:
    first = np.asarray(transformer.transform(data.iloc[:TRANSFORM_CHUNK_ROWS]), dtype=np.float64)
    X = np.empty((len(data), first.shape[1]), dtype=np.float64)
    X[: len(first)] = first
    for start in range(TRANSFORM_CHUNK_ROWS, len(data), TRANSFORM_CHUNK_ROWS):
        block = data.iloc[start : start + TRANSFORM_CHUNK_ROWS]
        X[start : start + len(block)] = transformer.transform(block)
    return X


def _fit_by_column(transformer: Pipeline, data: pd.DataFrame, frame: FeatureFrame) -> bool:
    """Fit ``transformer`` (no PCA) to the same state, bit for bit, as
    ``transformer.fit(data)``, holding one column at a time instead of the whole matrix: the
    structure (columns, categories) is fitted on a few rows, then the numeric imputer and
    scaler get statistics fitted column by column and the categorical imputer the fill values
    of all rows.

    Returns False where per-column statistics could differ from a whole-frame fit; the caller
    then fits the plain way, which replaces anything fitted here.
    """
    numeric, categorical = frame.numeric_features, frame.categorical_features
    if numeric:
        num = data[numeric]
        # scikit-learn reduces the converted matrix along axis 0; those sums add up each
        # column in one contiguous run (as a single column does) only when pandas hands it a
        # column-major matrix, which is how pandas lays out its blocks.
        probe = check_array(
            num.iloc[:2], dtype=FLOAT_DTYPES, ensure_all_finite="allow-nan", copy=True
        )  # also the dtype the whole frame converts to
        if len(numeric) > 1 and not probe.flags.f_contiguous:
            return False
        # An all-missing column is dropped by the imputer, with a warning per fit.
        if any(not num[c].notna().any() for c in numeric):
            return False
    transformer.fit(data.iloc[_structure_rows(data, numeric, categorical)])
    parts = transformer.named_steps["columns"].named_transformers_
    if numeric:
        imputer, scaler = parts["num"].named_steps["impute"], parts["num"].named_steps["scale"]
        imputers: list[BaseEstimator] = []
        scalers: list[BaseEstimator] = []
        for col in numeric:
            x = check_array(
                data[[col]], dtype=FLOAT_DTYPES, ensure_all_finite="allow-nan", input_name="X"
            )
            x = x.astype(probe.dtype, copy=False)  # a float32 column among float64 ones
            imputers.append(_fit_imputer(imputer, x))
            scalers.append(clone(scaler).fit(imputers[-1].transform(x)))
        if not (_install(imputer, imputers) and _install(scaler, scalers)):
            return False
    if categorical:
        # The fill value (most frequent category) needs every row; the categories are all in
        # the structure rows. The imputer counts each column on its own.
        full = clone(parts["cat"].named_steps["impute"]).fit(data[categorical])
        parts["cat"].named_steps["impute"].statistics_ = full.statistics_
    return True


def _fit_imputer(imputer: BaseEstimator, x: np.ndarray) -> BaseEstimator:
    """``clone(imputer).fit(x)`` for one column. scikit-learn's median sorts a masked array
    (0.9 s of the 1M-row run); the same two middle order statistics come from a partition,
    halved the way ``np.ma.median`` does, so the statistic is bit for bit the same."""
    fitted = clone(imputer)
    if fitted.strategy != "median" or x.dtype != np.float64:
        return fitted.fit(x)
    values = x[:, 0][~np.isnan(x[:, 0])]
    if not values.size:
        return fitted.fit(x)
    # Fitted on one present value for the fitted state, then given the median of all rows.
    fitted.fit(values[:1, None])
    fitted.statistics_ = np.array([_median(values)])
    return fitted


def _median(values: np.ndarray) -> float:
    """``np.ma.median`` of present values: (low + high) / 2 of the middle pair, where low is
    high for an odd count."""
    half = values.size // 2
    if values.size % 2:
        low = high = np.partition(values, half)[half]
    else:
        parts = np.partition(values, [half - 1, half])
        low, high = parts[half - 1], parts[half]
    return float(np.true_divide(np.add(low, high), 2.0))


def _structure_rows(data: pd.DataFrame, numeric: list[str], categorical: list[str]) -> np.ndarray:
    """Rows that fit the same structure as all rows: the first two, a present value of
    every numeric column and the first row of every category (so one-hot sees them all)."""
    picks = [np.arange(min(2, len(data)))]
    picks += [np.array([int(np.argmax(data[c].notna().to_numpy()))]) for c in numeric]
    picks += [np.flatnonzero(~data[c].duplicated().to_numpy()) for c in categorical]
    return np.unique(np.concatenate(picks))


def _install(target: BaseEstimator, per_column: list[BaseEstimator]) -> bool:
    """Give ``target`` (fitted on the structure rows) the fitted state of ``per_column``,
    one estimator fitted on each of its columns: per-feature arrays are joined, counts taken
    over; names and feature counts stay the structure fit's. False if counts disagree."""
    for name, value in list(vars(target).items()):
        if not name.endswith("_") or name in ("n_features_in_", "feature_names_in_"):
            continue
        values = [vars(e)[name] for e in per_column]
        if isinstance(value, np.ndarray) and value.shape == (len(per_column),):
            setattr(target, name, np.concatenate(values))
        elif value is not None:
            # A count such as n_samples_seen_: the same for every column unless some column
            # had missing values, which imputation rules out before the scaler.
            if not all(np.array_equal(v, values[0]) for v in values):
                return False
            setattr(target, name, values[0])
    return True


def _as_text(values: pd.Series) -> pd.Series:
    """Categorical values compared as text, so mixed types (1 and "1") do not split."""
    return values.astype("string").astype(object).where(values.notna(), np.nan)


def build_transformer(frame: FeatureFrame, config: PreprocessingConfig, seed: int) -> Pipeline:
    strategy = "mean" if config.missing == "impute_mean" else "median"
    parts = []
    if frame.numeric_features:
        parts.append(
            (
                "num",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy=strategy)),
                        ("scale", _SCALERS[config.scaling]()),
                    ]
                ),
                frame.numeric_features,
            )
        )
    if frame.categorical_features:
        parts.append(
            (
                "cat",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                frame.categorical_features,
            )
        )
    steps: list[tuple[str, object]] = [
        ("columns", ColumnTransformer(parts, verbose_feature_names_out=False))
    ]
    if config.pca is not None:
        steps.append(("pca", PCA(n_components=config.pca, random_state=seed)))
    return Pipeline(steps)


def prepare(frame: FeatureFrame, config: PreprocessingConfig, seed: int = 0) -> Prepared:
    features = frame.raw[frame.features]
    missing = features.isna()
    rows_dropped = 0
    imputed: dict[str, int] = {}
    if config.missing == "drop_rows":
        keep = ~missing.any(axis=1)
        rows_dropped = int((~keep).sum())
        if int(keep.sum()) < MIN_ROWS:
            raise DataError(
                f"preprocessing.missing=drop_rows leaves {int(keep.sum())} complete row(s) of "
                f"{len(keep)}; at least {MIN_ROWS} are needed. Use impute_median instead"
            )
        frame = frame.subset(keep)
        features = frame.raw[frame.features]
    else:
        imputed = {c: int(n) for c, n in missing.sum().items() if n}

    # Categorical values are compared as text so mixed types (e.g. 1 and "1") do not split.
    # Copy-on-write: replacing a column never touches the user's frame, so no deep copy.
    data = features.assign(**{c: _as_text(features[c]) for c in frame.categorical_features})
    transformer = build_transformer(frame, config, seed)
    try:
        if config.pca is None and len(data) > TRANSFORM_CHUNK_ROWS:
            # Fit column by column, then transform in blocks into one matrix: a plain fit
            # holds several full-size copies (converted, imputed, scaled, stacked).
            if not _fit_by_column(transformer, data, frame):
                transformer.fit(data)
            X = _transform_in_blocks(transformer, data)
        else:
            X = np.asarray(transformer.fit_transform(data), dtype=np.float64)
    except ValueError as exc:
        raise DataError(f"preprocessing failed: {exc}") from None
    columns = [str(c) for c in transformer[:1].get_feature_names_out()]
    pca_variance = None
    if config.pca is not None:
        pca: PCA = transformer.named_steps["pca"]
        columns = [f"pc{i + 1}" for i in range(pca.n_components_)]
        pca_variance = [float(v) for v in pca.explained_variance_ratio_]
    return Prepared(
        X=np.ascontiguousarray(X),
        frame=frame,
        transformer=transformer,
        columns=columns,
        rows_dropped=rows_dropped,
        imputed=imputed,
        pca_variance=pca_variance,
    )


def transform(prepared: Prepared, table: pd.DataFrame) -> np.ndarray:
    """Apply the fitted transform to new rows (same columns) for assignment."""
    features = table[prepared.frame.features]
    data = features.assign(
        **{c: _as_text(features[c]) for c in prepared.frame.categorical_features}
    )
    return np.asarray(prepared.transformer.transform(data), dtype=np.float64)
