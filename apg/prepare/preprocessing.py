"""Turn the clustering columns into the matrix the algorithms see.

Steps, in order: the date rules (:class:`~apg.prepare.encoding.DateDays`, only when a
clustering column holds dates; the rows hold days already); per column, numbers imputed,
transformed (when configured) and scaled, two-valued numbers as flags of their rarer value,
text (two-valued too) one-hot encoded; redundant columns dropped
(:class:`~apg.prepare.encoding.DropColumns`, only when some are); optional PCA. The rules are
in :mod:`apg.prepare.encoding`. No silent log transforms or clipping.

A table read one column at a time (a streamed run) is fitted by :func:`prepare_by_column` to
the same transformer as :func:`prepare` would fit on the whole table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, RobustScaler, StandardScaler

from apg.config import PreprocessingConfig
from apg.errors import DataError, listing
from apg.prepare.columnwise import (
    Streamed,
    fit_columns,
    matrix_parts,
    with_text,
)
from apg.prepare.columnwise import fit_by_column as _fit_by_column
from apg.prepare.columnwise import fit_imputer as _fit_imputer  # noqa: F401 (tests use it)
from apg.prepare.encoding import (
    BinaryEncoder,
    DateDays,
    DropColumns,
    describe_redundant,
    flag_counts,
    flag_report,
    redundancy_rows,
    redundant_columns,
    warn_rare,
    warn_redundant,
)
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
    # Per two-valued clustering column: column, its rarer value, users and share holding it.
    binary: list[dict[str, object]] = field(default_factory=list)
    # Per matrix column dropped as a repeat: column, the column kept, their Pearson r.
    redundant: list[dict[str, object]] = field(default_factory=list)
    # Per clustering date column: column, unit, reference_date, reference (where it came from),
    # format. FeatureFrame.raw holds those days, so profiles describe days too.
    dates: list[dict[str, object]] = field(default_factory=list)


TRANSFORM_CHUNK_ROWS = 100_000


def _transform_in_blocks(transformer: Pipeline, data: pd.DataFrame) -> np.ndarray:
    first = np.asarray(transformer.transform(data.iloc[:TRANSFORM_CHUNK_ROWS]), dtype=np.float64)
    X = np.empty((len(data), first.shape[1]), dtype=np.float64)
    X[: len(first)] = first
    for start in range(TRANSFORM_CHUNK_ROWS, len(data), TRANSFORM_CHUNK_ROWS):
        block = data.iloc[start : start + TRANSFORM_CHUNK_ROWS]
        X[start : start + len(block)] = transformer.transform(block)
    return X


def build_transformer(frame: FeatureFrame, config: PreprocessingConfig, seed: int) -> Pipeline:
    strategy = "mean" if config.missing == "impute_mean" else "median"
    numeric, binary, categorical = matrix_parts(frame)
    _check_transforms(frame, config)
    parts = []
    if numeric:
        steps: list[tuple[str, BaseEstimator]] = [("impute", SimpleImputer(strategy=strategy))]
        if config.transform == "auto" or config.transforms:
            steps.append(("transform", _skew_transform(numeric, config)))
        steps.append(("scale", _SCALERS[config.scaling]()))
        parts.append(("num", Pipeline(steps), numeric))
    if binary:
        parts.append(("bin", Pipeline([("flag", BinaryEncoder(columns=binary))]), binary))
    if categorical:
        parts.append(
            (
                "cat",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                categorical,
            )
        )
    chain: list[tuple[str, object]] = []
    if frame.dates:
        chain.append(("dates", DateDays({c: r.to_dict() for c, r in frame.dates.items()})))
    chain.append(("columns", ColumnTransformer(parts, verbose_feature_names_out=False)))
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
    """A per-column transform must name a numeric clustering column with over two values."""
    numeric = matrix_parts(frame)[0]
    for col in config.transforms:
        if col in numeric:
            continue
        if col in frame.categorical_features:
            what = "a text column (transforms apply to numbers)"
        elif col in frame.binary:
            what = "a two-valued column (clustered as a flag; transforms apply to numbers)"
        else:
            what = "not a clustering column"
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
    """Names of the matrix columns before PCA (after the redundant ones are dropped)."""
    return [str(c) for c in _encoding(transformer, drop=True).get_feature_names_out()]


def _encoding(transformer: Pipeline, drop: bool = False) -> Pipeline:
    """The steps up to the encoded columns (and with ``drop``, the redundant step): a
    pipeline sharing ``transformer``'s estimators, so fitting it fits them."""
    names = [name for name, _ in transformer.steps]
    last = "redundant" if drop and "redundant" in names else "columns"
    return transformer[: names.index(last) + 1]


def _drop_redundant(
    transformer: Pipeline, sample_X: np.ndarray, config: PreprocessingConfig
) -> list[dict[str, object]]:
    """Find the redundant columns of the encoded sample rows; when there are, add the step
    that drops them after "columns" (fitted). Returns what was dropped, and warns."""
    if config.redundancy_threshold is None:
        return []
    found = redundant_columns(sample_X, config.redundancy_threshold, _sources(transformer))
    if not found:
        return []
    report = describe_redundant(found, _column_names(transformer))
    step = DropColumns(sorted(j for j, _, _ in found)).fit(sample_X[:1])
    transformer.steps.insert(
        [n for n, _ in transformer.steps].index("columns") + 1, ("redundant", step)
    )
    warn_redundant(report, config.redundancy_threshold, stacklevel=3)
    return report


def _sources(transformer: Pipeline) -> list[str]:
    """The table column behind each encoded matrix column (before any is dropped)."""
    sources: list[str] = []
    for name, part, cols in transformer.named_steps["columns"].transformers_:
        if name == "cat":
            for col, cats in zip(cols, part.named_steps["onehot"].categories_, strict=True):
                sources += [str(col)] * len(cats)
        elif name != "remainder":
            sources += [str(c) for c in cols]
    return sources


def _report(
    frame: FeatureFrame,
    counts: dict[str, tuple[object, int, object]],
    min_cluster_share: float | None,
) -> dict[str, list[dict[str, object]]]:
    """The two-valued columns and dates, for Prepared; warns of rare values."""
    flags = flag_report({c: counts[c] for c in frame.binary}, len(frame.ids))
    if min_cluster_share is not None:
        warn_rare(flags, min_cluster_share, stacklevel=3)
    return {
        "binary": flags,
        "dates": [rule.describe(col) for col, rule in frame.dates.items()],
    }


def prepare(
    frame: FeatureFrame,
    config: PreprocessingConfig,
    seed: int = 0,
    *,
    min_cluster_share: float | None = None,
) -> Prepared:
    """Fit the preprocessing on ``frame`` and build the clustering matrix. With
    ``min_cluster_share`` (search.min_cluster_share), a two-valued column whose rarer value
    covers fewer users is warned about."""
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
    data = with_text(features, frame.categorical_features)
    transformer = build_transformer(frame, config, seed)
    encoding = _encoding(transformer)
    sample = redundancy_rows(len(data), seed)
    try:
        if config.pca is None and len(data) > TRANSFORM_CHUNK_ROWS:
            # Fit column by column, then transform in blocks into one matrix: a plain fit
            # holds several full-size copies (converted, imputed, scaled, stacked).
            if not _fit_by_column(transformer, data, frame):
                encoding.fit(data)
            sample_X = np.asarray(encoding.transform(data.iloc[sample]), dtype=np.float64)
            redundant = _drop_redundant(transformer, sample_X, config)
            X = _transform_in_blocks(transformer, data)
        else:
            X = np.asarray(encoding.fit_transform(data), dtype=np.float64)
            redundant = _drop_redundant(
                transformer, X if len(sample) == len(X) else X[sample], config
            )
            if "redundant" in transformer.named_steps:
                X = transformer.named_steps["redundant"].transform(X)
            if config.pca is not None:
                X = np.asarray(transformer.named_steps["pca"].fit_transform(X), dtype=np.float64)
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
        redundant=redundant,
        **_report(frame, {c: flag_counts(data[c]) for c in frame.binary}, min_cluster_share),
    )


def prepare_by_column(
    frame: FeatureFrame,
    config: PreprocessingConfig,
    seed: int = 0,
    *,
    min_cluster_share: float | None = None,
) -> Prepared:
    """:func:`prepare` for a frame of :func:`~apg.prepare.features.select_features_by_column`, read
    one column at a time. ``transformer``, ``columns``, ``rows_dropped``, ``imputed``,
    ``frame`` (after ``drop_rows``, still lazy), the reports and warnings are those ``prepare``
    gives for the whole table; ``transform`` of any rows is ``prepare``'s, bit for bit.

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
    streamed = Streamed(frame, redundancy_rows(len(frame.raw), seed))
    try:
        # prepare fits the plain way up to TRANSFORM_CHUNK_ROWS rows and column by column
        # above; on a column-major table (as readers build them) both reach this state.
        problem = fit_columns(transformer, streamed, frame)
        if not problem:
            sample_X = _encoding(transformer).transform(streamed.sample())
            redundant = _drop_redundant(transformer, np.asarray(sample_X, np.float64), config)
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
        redundant=redundant,
        **_report(frame, streamed.counts, min_cluster_share),
    )


def transform(prepared: Prepared, table: pd.DataFrame) -> np.ndarray:
    """Apply the fitted transform to rows as ``FeatureFrame.raw`` holds them (a batch of a
    streamed run's rows; dates as days, though text dates are read too). New users in their
    raw form go through the stored model (``apg.search.model_io``).

    Row-major, as ``prepare``'s X: a transform of numeric columns alone comes out
    column-major, and distances and sums over a matrix depend on its layout in the last bit.
    """
    data = with_text(table[prepared.frame.features], prepared.frame.categorical_features)
    return np.ascontiguousarray(prepared.transformer.transform(data), dtype=np.float64)
