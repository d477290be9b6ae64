"""Fitting the preprocessing one column at a time, to the bit what one plain fit gives.

:func:`prepare <apg.prepare.preprocessing.prepare>` fits this way above
``TRANSFORM_CHUNK_ROWS`` rows (a plain fit holds several full-size copies of the matrix), and a
streamed run always does (:class:`Streamed`: its table is never read whole). Per-column
statistics (imputer fills, transforms, scalers, flags) are fitted on each column alone; the
structure (columns, categories) on a few rows; the first are then installed into the second.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import FLOAT_DTYPES, check_array

from apg.prepare.encoding import flag_counts
from apg.prepare.features import FeatureFrame, LazyRaw


class Streamed:
    """``prepare``'s ``data`` (the clustering columns, categorical values as text) of a
    :class:`LazyRaw` frame, read a whole column or a few rows at a time, never whole."""

    def __init__(self, frame: FeatureFrame, sample: np.ndarray) -> None:
        assert isinstance(frame.raw, LazyRaw)
        self._raw = frame.raw
        self._features = frame.features
        self._categorical = frame.categorical_features
        self._binary = frame.binary
        self._sample = sample
        self._sampled: dict[str, pd.Series] = {}
        self.counts: dict[str, tuple[object, int, object]] = {}

    def __len__(self) -> int:
        return len(self._raw)

    def __getitem__(self, col: str) -> pd.Series:
        values = self._raw[col]
        values = as_text(values) if col in self._categorical else values
        # Kept while the column is at hand: the rows redundancy is measured on, and the
        # counts of a two-valued column's values.
        self._sampled[col] = values.iloc[self._sample].reset_index(drop=True)
        if col in self._binary:
            self.counts[col] = flag_counts(values)
        return values

    def sample(self) -> pd.DataFrame:
        """The sample rows of every feature, as ``take`` gives them (each column was read
        by the fit; none is read again)."""
        return pd.DataFrame({col: self._sampled[col] for col in self._features})

    def take(self, indices: np.ndarray) -> pd.DataFrame:
        return with_text(self._raw.rows(indices, self._features), self._categorical)


def fit_by_column(
    transformer: Pipeline, data: pd.DataFrame | Streamed, frame: FeatureFrame
) -> bool:
    """Fit ``transformer`` (no PCA) to the same state, bit for bit, as
    ``transformer.fit(data)``, holding one column at a time instead of the whole matrix.

    Returns False where per-column statistics could differ from a whole-frame fit; the caller
    then fits the plain way, which replaces anything fitted here.
    """
    return fit_columns(transformer, data, frame) is None


def fit_columns(
    transformer: Pipeline, data: pd.DataFrame | Streamed, frame: FeatureFrame
) -> str | None:
    """:func:`fit_by_column`, reading each column of ``data`` once: the numeric imputer and
    scaler are fitted column by column, the categorical imputer's fill values too (they need
    every row); then the structure (columns, categories) is fitted on a few rows and given
    those statistics. Returns None when fitted, else why a whole-frame fit is needed."""
    numeric, binary, categorical = matrix_parts(frame)
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
            imputers.append(fit_imputer(steps["num"]["impute"], x))
            filled = imputers[-1].transform(x)
            if "transform" in steps["num"]:
                one = clone(steps["num"]["transform"]).set_params(columns=[col])
                transforms.append(one.fit(filled))
                filled = one.transform(filled)
            scalers.append(clone(steps["num"]["scale"]).fit(filled))
    if binary:
        flags = per_column["bin", "flag"] = []
        for col in binary:
            values = data[col]
            picks.append(np.flatnonzero(~values.duplicated().to_numpy()))
            flags.append(
                clone(steps["bin"]["flag"]).set_params(columns=[col]).fit(values.to_frame())
            )
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
        columns = {"num": numeric, "bin": binary, "cat": categorical}[part]
        problem = _install(parts[part].named_steps[step], fitted, columns)
        if problem:
            return problem
    return None


def fit_imputer(imputer: BaseEstimator, x: np.ndarray) -> BaseEstimator:
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


def as_text(values: pd.Series) -> pd.Series:
    """Categorical values compared as text, so mixed types (1 and "1") do not split."""
    return values.astype("string").astype(object).where(values.notna(), np.nan)


def with_text(features: pd.DataFrame, categorical: list[str]) -> pd.DataFrame:
    """``features`` with the ``categorical`` columns as text (see :func:`as_text`)."""
    # Copy-on-write: replacing a column never touches the user's frame, so no deep copy.
    return features.assign(**{c: as_text(features[c]) for c in categorical})


def matrix_parts(frame: FeatureFrame) -> tuple[list[str], list[str], list[str]]:
    """The columns of the matrix's parts: numbers, two-valued numbers (flags), text (one-hot,
    two-valued text included: it is a flag already, see apg.prepare.encoding)."""
    numeric = frame.numeric_features
    return (
        [c for c in numeric if c not in frame.binary],
        [c for c in numeric if c in frame.binary],
        list(frame.categorical_features),
    )
