"""Encodings of the clustering matrix beyond impute/scale/one-hot: flags, dates, redundancy.

**Two-valued columns** (0/1 numbers, True/False, yes/no text: any clustering column with
exactly two distinct values) weigh the same however they are stored, and a rare value cannot
dominate distances: the two values are always :data:`FLAG_VALUE` (√2) apart, whatever their
shares and the scaler. Text and True/False columns get that from one-hot encoding (two 0/1
columns: √2 between any two categories). A two-valued *numeric* column becomes one flag
(:class:`BinaryEncoder`): 0 for the more frequent value, √2 for the rarer one (on a tie, the
larger number); distances, k-means, Ward and DBSCAN then see exactly what one-hot encoding of
the same values as text gives them, in one column instead of two. Standardised instead, a
value held by a share p of users sits ``1 / sqrt(p (1 - p))`` from the rest: 10 units for a
1% flag, which is how 21 complainers became a persona of their own. A missing value, or a
value a new user has that training never saw, counts as the common one (0): a two-valued
column is never imputed with a median or mean that is neither of its values.

A two-valued column whose rarer value covers fewer users than ``search.min_cluster_share``
is kept, with a warning: no persona can be made of those users alone.

**Dates** are read as days before a reference when the table is read
(:mod:`apg.prepare.dates`); :class:`DateDays`, the first step of the fitted pipeline, carries
those rules so that the stored model reads a new user's date exactly so.

**Redundant columns.** After encoding, a column whose |Pearson r| with an earlier column of
*another* source column (matrix order: numbers, flags, one-hot columns, each in config order)
reaches ``preprocessing.redundancy_threshold`` (0.98) is dropped from the matrix: six service
columns that all say "No internet service" are one fact, not six. The one-hot columns of one
source column are never compared with each other (two of them are always r = -1). r is
computed on every row up to :data:`REDUNDANCY_ROWS` rows, above that on a seeded sample of
that many (the same rows whether the table is read whole or a column at a time). Profiles
still describe the dropped source columns.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from apg.prepare.dates import DateRule

# The distance between a two-valued column's values in the matrix: one-hot's between any
# two categories, so a 0/1 column weighs what the same yes/no as text does.
FLAG_VALUE = float(np.sqrt(2.0))
# Rows that decide which columns are redundant (every row of smaller tables).
REDUNDANCY_ROWS = 50_000


def _frame(X: Any) -> pd.DataFrame:
    return X if isinstance(X, pd.DataFrame) else pd.DataFrame(X)


def _is_number(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def value_text(value: object) -> str:
    """A value as written in names and messages: 1.0 as '1', text as it is."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def flag_counts(values: pd.Series) -> tuple[object, int, object]:
    """``(rarer value, rows holding it, common value)`` of a column's present values: numbers
    as floats, anything else as text. The rarer is the less frequent; on a tie the larger.
    NaN for a value that is absent (one value or none)."""
    present = values.dropna()
    present = present.astype(np.float64 if _is_number(values) else str)
    # Larger values first, then a stable sort by count: the rarer first, the larger on a tie.
    order = sorted(present.value_counts().items(), key=lambda kv: kv[0], reverse=True)
    order.sort(key=lambda kv: kv[1])
    common = order[-1][0] if order else np.nan
    if len(order) < 2:
        return np.nan, 0, common
    return order[0][0], int(order[0][1]), common


class BinaryEncoder(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Two-valued numeric columns as flags of their rarer value: ``value`` where a row holds
    it, else 0 (see the module docstring). Fitted state, one entry per column so per-column
    fits join: ``rare_`` (NaN when the column had fewer than two values) and ``common_``."""

    def __init__(self, columns: Sequence[str] = (), value: float = FLAG_VALUE) -> None:
        self.columns = columns
        self.value = value

    def fit(self, X: Any, y: Any = None) -> BinaryEncoder:
        frame = _frame(X)
        counts = [flag_counts(frame.iloc[:, j]) for j in range(frame.shape[1])]
        self.rare_ = np.array([float(rare) for rare, _, _ in counts], dtype=np.float64)
        self.common_ = np.array([float(common) for _, _, common in counts], dtype=np.float64)
        self.n_features_in_ = frame.shape[1]
        return self

    def transform(self, X: Any) -> np.ndarray:
        frame = _frame(X)
        out = np.zeros((len(frame), frame.shape[1]), dtype=np.float64)
        for j in range(frame.shape[1]):
            out[is_value(frame.iloc[:, j], self.rare_[j]), j] = self.value
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        names = list(input_features if input_features is not None else self.columns)
        return np.asarray(
            [
                name if np.isnan(rare) else f"{name}_{value_text(rare)}"
                for name, rare in zip(names, self.rare_, strict=True)
            ],
            dtype=object,
        )


def is_value(values: Any, rare: float) -> np.ndarray:
    """Where ``values`` (numbers; text is read as numbers) equal ``rare``."""
    x = pd.to_numeric(pd.Series(values), errors="coerce")
    return np.asarray(x.to_numpy(dtype=np.float64, na_value=np.nan) == rare, dtype=bool)


def flag_report(
    counts: dict[str, tuple[object, int, object]], rows: int
) -> list[dict[str, object]]:
    """Per two-valued column: its rarer value, how many users hold it and their share."""
    return [
        {
            "column": col,
            "value": value_text(rare),
            "users": users,
            "share": round(users / rows, 6) if rows else 0.0,
        }
        for col, (rare, users, _common) in counts.items()
        if not pd.isna(rare)  # type: ignore[call-overload]
    ]


def warn_rare(report: list[dict[str, Any]], min_share: float, stacklevel: int) -> None:
    """Warn for each two-valued column whose rarer value covers fewer users than
    ``min_share``."""
    for flag in report:
        if flag["share"] >= min_share:
            continue
        warnings.warn(
            f"column {flag['column']!r}: its rarer value {flag['value']!r} covers "
            f"{flag['users']:,} user(s) ({flag['share']:.1%}), fewer than "
            f"search.min_cluster_share ({min_share:.0%}): too few for a persona of their "
            "own. It stays a feature, its two values √2 apart, so it cannot dominate "
            "distances",
            stacklevel=stacklevel + 1,
        )


class DateDays(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """The first pipeline step when clustering columns hold dates: ``rules`` maps each to
    ``DateRule.to_dict()``, which the stored model reads. Rows reach the pipeline as
    ``FeatureFrame.raw`` holds them, dates already days (converted when the table is read),
    and pass through untouched; a date column given as text or timestamps is converted.
    (The stored model converts a new user's raw dates itself, numbers included.)"""

    def __init__(self, rules: dict[str, dict[str, str | None]] | None = None) -> None:
        self.rules = rules

    def fit(self, X: Any, y: Any = None) -> DateDays:
        self.feature_names_in_ = np.asarray(_frame(X).columns, dtype=object)
        self.n_features_in_ = len(self.feature_names_in_)
        return self

    def transform(self, X: Any) -> Any:
        frame = _frame(X)
        changed = {
            col: DateRule.from_dict(rule).days(frame[col])
            for col, rule in (self.rules or {}).items()
            if col in frame.columns and not _is_number(frame[col])
        }
        return frame.assign(**changed) if changed else X

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        names = input_features if input_features is not None else self.feature_names_in_
        return np.asarray(names, dtype=object)


class DropColumns(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Drops the matrix columns at positions ``drop`` (the redundant ones)."""

    def __init__(self, drop: Sequence[int] = ()) -> None:
        self.drop = drop

    def fit(self, X: Any, y: Any = None) -> DropColumns:
        n = np.shape(X)[1]
        keep = np.ones(n, dtype=bool)
        keep[list(self.drop)] = False
        self.keep_ = keep
        self.n_features_in_ = n
        return self

    def transform(self, X: Any) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(X)[:, self.keep_])

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(input_features, dtype=object)[self.keep_]


def redundancy_rows(n: int, seed: int) -> np.ndarray:
    """The sorted rows redundancy is measured on: all, or a seeded sample."""
    if n <= REDUNDANCY_ROWS:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, REDUNDANCY_ROWS, replace=False))


def redundant_columns(
    X: np.ndarray, threshold: float, sources: Sequence[str]
) -> list[tuple[int, int, float]]:
    """``(dropped, kept, r)`` for each column of ``X`` whose |Pearson r| with an earlier kept
    column of another source column (``sources[j]``: the table column matrix column j
    encodes) reaches ``threshold``; the first such column is the one kept. Constant columns
    have no r and are kept."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    if X.shape[1] < 2 or len(X) < 2:
        return []
    varies = np.ptp(X, axis=0) > 0
    centred = X - X.mean(axis=0)
    norms = np.sqrt(np.einsum("ij,ij->j", centred, centred))
    norms[~varies] = 1.0
    r = np.clip((centred.T @ centred) / np.outer(norms, norms), -1.0, 1.0)
    kept: list[int] = []
    out: list[tuple[int, int, float]] = []
    source = np.asarray(sources, dtype=object)
    for j in range(X.shape[1]):
        if varies[j] and kept:
            others = np.asarray(kept)[source[kept] != source[j]]
            close = np.flatnonzero(np.abs(r[others, j]) >= threshold)
            if close.size:
                i = int(others[close[0]])
                out.append((j, i, float(r[i, j])))
                continue
        if varies[j]:
            kept.append(j)
    return out


def describe_redundant(
    found: list[tuple[int, int, float]], names: list[str]
) -> list[dict[str, object]]:
    return [{"column": names[j], "kept": names[i], "r": round(r, 4)} for j, i, r in found]


def warn_redundant(report: list[dict[str, Any]], threshold: float, stacklevel: int) -> None:
    """One warning per kept column, naming the columns dropped as its repeats."""
    by_kept: dict[str, list[dict[str, Any]]] = {}
    for item in report:
        by_kept.setdefault(str(item["kept"]), []).append(item)
    for kept, items in by_kept.items():
        repeats = ", ".join(f"{str(i['column'])!r} (r = {i['r']:.3f})" for i in items)
        warnings.warn(
            f"clustering column(s) {repeats} repeat {kept!r} (|r| >= {threshold:g} after "
            f"encoding): dropped from the matrix, {kept!r} kept, so one fact is not counted "
            f"{len(items) + 1} times; set preprocessing.redundancy_threshold to change",
            stacklevel=stacklevel + 1,
        )
