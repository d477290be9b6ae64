"""Turn the clustering columns into the matrix the algorithms see.

Only configured transforms are applied: imputation, one-hot encoding of categorical columns,
one scaler, optional PCA. No silent log transforms or clipping.

A table read one column at a time (a streamed run) is fitted by :func:`prepare_by_column` to
the same transformer as :func:`prepare` would fit on the whole table.
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
from apg.errors import DataError, listing
from apg.prepare.features import MIN_ROWS, FeatureFrame, LazyRaw
from apg.prepare.transforms import SkewTransform

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
    # Per transformed column: column, transform, skewness before and after (apg.prepare.transforms).
    transforms: list[dict[str, object]] = field(default_factory=list)


TRANSFORM_CHUNK_ROWS = 100_000


def _transform_in_blocks(transformer: Pipeline, data: pd.DataFrame) -> np.ndarray:
    first = np.asarray(transformer.transform(data.iloc[:TRANSFORM_CHUNK_ROWS]), dtype=np.float64)
    X = np.empty((len(data), first.shape[1]), dtype=np.float64)
    X[: len(first)] = first
    for start in range(TRANSFORM_CHUNK_ROWS, len(data), TRANSFORM_CHUNK_ROWS):
        block = data.iloc[start : start + TRANSFORM_CHUNK_ROWS]
        X[start : start + len(block)] = transformer.transform(block)
    return X


class _Streamed:
    """``prepare``'s ``data`` (the clustering columns, categorical values as text) of a
    :class:`LazyRaw` frame, read a whole column or a few rows at a time, never whole."""

    def __init__(self, frame: FeatureFrame) -> None:
        assert isinstance(frame.raw, LazyRaw)
        self._raw = frame.raw
        self._features = frame.features
        self._categorical = frame.categorical_features

    def __len__(self) -> int:
        return len(self._raw)

    def __getitem__(self, col: str) -> pd.Series:
        values = self._raw[col]
        return _as_text(values) if col in self._categorical else values

    def take(self, indices: np.ndarray) -> pd.DataFrame:
        return _with_text(self._raw.rows(indices, self._features), self._categorical)


def _fit_by_column(
    transformer: Pipeline, data: pd.DataFrame | _Streamed, frame: FeatureFrame
) -> bool:
    """Fit ``transformer`` (no PCA) to the same state, bit for bit, as
    ``transformer.fit(data)``, holding one column at a time instead of the whole matrix.

    Returns False where per-column statistics could differ from a whole-frame fit; the caller
    then fits the plain way, which replaces anything fitted here.
    """
    return _fit_columns(transformer, data, frame) is None


def _fit_columns(
    transformer: Pipeline, data: pd.DataFrame | _Streamed, frame: FeatureFrame
) -> str | None:
    """:func:`_fit_by_column`, reading each column of ``data`` once: the numeric imputer and
    scaler are fitted column by column, the categorical imputer's fill values too (they need
    every row); then the structure (columns, categories) is fitted on a few rows and given
    those statistics. Returns None when fitted, else why a whole-frame fit is needed."""
    numeric, categorical = frame.numeric_features, frame.categorical_features
    unfitted = transformer.named_steps["columns"].transformers
    steps = {name: pipe.named_steps for name, pipe, _cols in unfitted}
    head = np.arange(min(2, len(data)))
    picks = [head]  # rows that fit the same structure as all rows
    per_column: dict[tuple[str, str], list[BaseEstimator]] = {}
    if numeric:
        if isinstance(data, pd.DataFrame):
            # scikit-learn reduces the converted matrix along axis 0; those sums add up each
            # column in one contiguous run (as a single column does) only when pandas hands
            # it a column-major matrix, which is how pandas lays out its blocks.
            probe = check_array(
                data[numeric].iloc[:2],
                dtype=FLOAT_DTYPES,
                ensure_all_finite="allow-nan",
                copy=True,
                input_name="X",  # errors (an infinity) read as a whole-frame fit's
            )  # also the dtype the whole frame converts to
            if len(numeric) > 1 and not probe.flags.f_contiguous:
                return "the numeric columns are laid out row by row"
        else:
            # A streamed table stands for a whole-table read, which pandas lays out
            # column-major.
            probe = check_array(
                data.take(head)[numeric],
                dtype=FLOAT_DTYPES,
                ensure_all_finite="allow-nan",
                input_name="X",
            )
        imputers = per_column["num", "impute"] = []
        transforms: list[BaseEstimator] = []
        if "transform" in steps["num"]:
            per_column["num", "transform"] = transforms
        scalers = per_column["num", "scale"] = []
        for col in numeric:
            values = data[col]
            present = values.notna().to_numpy()
            if not present.any():
                # scikit-learn drops an all-missing column, with a warning per fit.
                return f"column {col!r} is entirely missing"
            picks.append(np.array([int(np.argmax(present))]))  # a value for the imputer
            # In the dtype of the whole frame's matrix (a float32 column among float64 ones).
            x = check_array(
                values.to_frame(), dtype=probe.dtype, ensure_all_finite="allow-nan", input_name="X"
            )
            imputers.append(_fit_imputer(steps["num"]["impute"], x))
            filled = imputers[-1].transform(x)
            if "transform" in steps["num"]:
                one = clone(steps["num"]["transform"]).set_params(columns=[col])
                transforms.append(one.fit(filled))
                filled = one.transform(filled)
            scalers.append(clone(steps["num"]["scale"]).fit(filled))
    if categorical:
        fills = per_column["cat", "impute"] = []
        for col in categorical:
            values = data[col]
            picks.append(np.flatnonzero(~values.duplicated().to_numpy()))  # one-hot sees all
            # The most frequent category of every row; scikit-learn counts each column on its
            # own, so one column at a time gives the same fill values.
            fills.append(clone(steps["cat"]["impute"]).fit(values.to_frame()))
    transformer.fit(data.take(np.unique(np.concatenate(picks))))
    parts = transformer.named_steps["columns"].named_transformers_
    for (part, step), fitted in per_column.items():
        columns = numeric if part == "num" else categorical
        problem = _install(parts[part].named_steps[step], fitted, columns)
        if problem:
            return problem
    return None


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


def _install(
    target: BaseEstimator, per_column: list[BaseEstimator], columns: list[str]
) -> str | None:
    """Give ``target`` (fitted on the structure rows) the fitted state of ``per_column``,
    one estimator fitted on each of its ``columns``: per-feature arrays are joined, counts
    taken over; names and feature counts stay the structure fit's. Says which column's count
    disagrees, if one does."""
    for name, value in list(vars(target).items()):
        if not name.endswith("_") or name in ("n_features_in_", "feature_names_in_"):
            continue
        values = [vars(e)[name] for e in per_column]
        if isinstance(value, np.ndarray) and value.shape == (len(per_column),):
            setattr(target, name, np.concatenate(values))
        elif value is not None:
            # A count such as n_samples_seen_: the same for every column unless some column
            # had missing values, which imputation rules out before the scaler.
            for col, v in zip(columns, values, strict=True):
                if not np.array_equal(v, values[0]):
                    return f"column {col!r} has another {name} than {columns[0]!r}"
            setattr(target, name, values[0])
    return None


def _as_text(values: pd.Series) -> pd.Series:
    """Categorical values compared as text, so mixed types (1 and "1") do not split."""
    return values.astype("string").astype(object).where(values.notna(), np.nan)


def _with_text(features: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    """``features`` with the ``categorical`` columns as text (see :func:`_as_text`)."""
    # Copy-on-write: replacing a column never touches the user's frame, so no deep copy.
    return features.assign(**{c: _as_text(features[c]) for c in categorical})


def build_transformer(frame: FeatureFrame, config: PreprocessingConfig, seed: int) -> Pipeline:
    strategy = "mean" if config.missing == "impute_mean" else "median"
    parts = []
    if frame.numeric_features:
        _check_transforms(frame, config)
        steps: list[tuple[str, BaseEstimator]] = [("impute", SimpleImputer(strategy=strategy))]
        if config.transform == "auto" or config.transforms:
            steps.append(("transform", _skew_transform(frame.numeric_features, config)))
        steps.append(("scale", _SCALERS[config.scaling]()))
        parts.append(("num", Pipeline(steps), frame.numeric_features))
    else:
        _check_transforms(frame, config)
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
    chain: list[tuple[str, object]] = [
        ("columns", ColumnTransformer(parts, verbose_feature_names_out=False))
    ]
    if config.pca is not None:
        chain.append(("pca", PCA(n_components=config.pca, random_state=seed)))
    return Pipeline(chain)


def _skew_transform(columns: list[str], config: PreprocessingConfig) -> SkewTransform:
    return SkewTransform(
        columns=list(columns),
        mode=config.transform,
        overrides={c: k for c, k in config.transforms.items() if c in columns},
        threshold=config.skew_threshold,
        quantiles=config.winsorize,
    )


def _check_transforms(frame: FeatureFrame, config: PreprocessingConfig) -> None:
    """A per-column transform must name a numeric clustering column."""
    for col in config.transforms:
        if col in frame.numeric_features:
            continue
        what = (
            "a text column (transforms apply to numbers)"
            if col in frame.categorical_features
            else "not a clustering column"
        )
        raise DataError(
            f"preprocessing.transforms: {col!r} is {what}; numeric clustering columns are "
            f"{listing(frame.numeric_features)}"
        )


def transforms_of(transformer: Pipeline) -> list[dict[str, object]]:
    """What the fitted transform step did, per transformed column (empty without one)."""
    parts = transformer.named_steps["columns"].named_transformers_
    if "num" not in parts or "transform" not in parts["num"].named_steps:
        return []
    step: SkewTransform = parts["num"].named_steps["transform"]
    return step.report()


def _check_complete_rows(kept: int, rows: int) -> None:
    if kept < MIN_ROWS:
        raise DataError(
            f"preprocessing.missing=drop_rows leaves {kept} complete row(s) of {rows}; at "
            f"least {MIN_ROWS} are needed. Use impute_median instead"
        )


def _column_names(transformer: Pipeline) -> list[str]:
    return [str(c) for c in transformer[:1].get_feature_names_out()]


def prepare(frame: FeatureFrame, config: PreprocessingConfig, seed: int = 0) -> Prepared:
    if isinstance(frame.raw, LazyRaw):
        raise TypeError("prepare needs the whole table; use prepare_by_column for a LazyRaw")
    features = frame.raw[frame.features]
    missing = features.isna()
    rows_dropped = 0
    imputed: dict[str, int] = {}
    if config.missing == "drop_rows":
        keep = ~missing.any(axis=1)
        rows_dropped = int((~keep).sum())
        _check_complete_rows(int(keep.sum()), len(keep))
        frame = frame.subset(keep)
        assert isinstance(frame.raw, pd.DataFrame)
        features = frame.raw[frame.features]
    else:
        imputed = {str(c): int(n) for c, n in missing.sum().items() if n}

    # Categorical values are compared as text so mixed types (e.g. 1 and "1") do not split.
    data = _with_text(features, frame.categorical_features)
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
    columns = _column_names(transformer)
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
        transforms=transforms_of(transformer),
    )


def prepare_by_column(frame: FeatureFrame, config: PreprocessingConfig, seed: int = 0) -> Prepared:
    """:func:`prepare` for a frame of :func:`~apg.prepare.features.select_features_by_column`, read
    one column at a time. ``transformer``, ``columns``, ``rows_dropped``, ``imputed`` and
    ``frame`` (after ``drop_rows``, still lazy) are those ``prepare`` gives for the whole
    table; ``transform`` of any rows is ``prepare``'s, bit for bit.

    ``X`` is not built (it would hold every row): it is an empty ``(0, len(columns))``
    array. Transform batches of rows instead: ``transform(prepared,
    prepared.frame.raw.rows(indices, prepared.frame.features))``.
    """
    if config.pca is not None:
        raise DataError(
            "preprocessing.pca is not supported for a streamed run yet: PCA needs the whole "
            "matrix; set preprocessing.pca: null or search.stream: off"
        )
    if not isinstance(frame.raw, LazyRaw):
        raise TypeError("prepare_by_column needs a LazyRaw frame; use prepare for a DataFrame")
    raw = frame.raw
    rows_dropped = 0
    imputed: dict[str, int] = {}
    if config.missing == "drop_rows":
        keep = np.ones(len(raw), dtype=bool)
        for col in frame.features:
            keep &= raw[col].notna().to_numpy()
        rows_dropped = int(np.count_nonzero(~keep))
        _check_complete_rows(len(raw) - rows_dropped, len(raw))
        frame = frame.subset(keep)
    else:
        missing = {col: int(raw[col].isna().sum()) for col in frame.features}
        imputed = {col: n for col, n in missing.items() if n}

    transformer = build_transformer(frame, config, seed)
    try:
        # prepare fits the plain way up to TRANSFORM_CHUNK_ROWS rows and column by column
        # above; on a column-major table (as readers build them) both reach this state.
        problem = _fit_columns(transformer, _Streamed(frame), frame)
    except ValueError as exc:
        raise DataError(f"preprocessing failed: {exc}") from None
    if problem:
        raise DataError(
            f"a streamed run cannot fit preprocessing one column at a time: {problem}; set "
            "search.stream: off"
        )
    columns = _column_names(transformer)
    return Prepared(
        X=np.empty((0, len(columns)), dtype=np.float64),
        frame=frame,
        transformer=transformer,
        columns=columns,
        rows_dropped=rows_dropped,
        imputed=imputed,
        transforms=transforms_of(transformer),
    )


def transform(prepared: Prepared, table: pd.DataFrame) -> np.ndarray:
    """Apply the fitted transform to new rows (same columns) for assignment, or to a batch
    of a streamed run's rows.

    Row-major, as ``prepare``'s X: a transform of numeric columns alone comes out
    column-major, and distances and sums over a matrix depend on its layout in the last bit.
    """
    data = _with_text(table[prepared.frame.features], prepared.frame.categorical_features)
    return np.ascontiguousarray(prepared.transformer.transform(data), dtype=np.float64)
