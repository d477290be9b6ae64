"""Per-column transforms of numeric clustering features, between imputation and scaling.

Customer spend and counts are heavy-tailed: scaled as they are, a handful of big spenders sets
the distances and the search isolates them. A transform pulls the tail in before scaling;
profiles, contrasts and narratives still read the raw columns, so every number a person sees
stays in the data's own units.

Kinds: ``log1p`` (``log(1 + x)``, for columns with no negative values; new values below the
fitted minimum are clipped to it), ``yeo-johnson`` (scikit-learn's ``PowerTransformer``
lambda, without standardising: the scaler does that), ``winsorize`` (clip to fitted quantiles)
and ``none``. With ``mode="auto"`` a column whose skewness (bias-corrected, as pandas' ``skew``)
reaches ``threshold`` gets ``log1p``, or ``yeo-johnson`` when it has negative values; columns
with two or fewer distinct values are left alone (a flag is not a tail). ``overrides`` name a
kind per column and win over the rule.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.preprocessing import PowerTransformer

KINDS = ("none", "log1p", "yeo-johnson", "winsorize")


def skewness(x: np.ndarray) -> float:
    """Bias-corrected sample skewness (pandas' ``Series.skew``); 0 for a constant column."""
    x = x[np.isfinite(x)]
    if len(x) < 3 or np.ptp(x) == 0:
        return 0.0
    return float(stats.skew(x, bias=False))


def yeo_johnson(x: np.ndarray, lmbda: float) -> np.ndarray:
    """The Yeo–Johnson transform with parameter ``lmbda``: SciPy's, which scikit-learn's
    ``PowerTransformer`` applies too (its numerically stable form)."""
    return np.asarray(stats.yeojohnson(np.asarray(x, dtype=np.float64), lmbda=lmbda))


class SkewTransform(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Fitted state per column (arrays of one value per column, so per-column fits join):
    ``kinds_``, ``lambdas_`` (Yeo–Johnson), ``lower_``/``upper_`` (clip bounds),
    ``skew_before_``/``skew_after_``."""

    def __init__(
        self,
        columns: Sequence[str] = (),
        mode: str = "none",
        overrides: Mapping[str, str] | None = None,
        threshold: float = 1.0,
        quantiles: tuple[float, float] = (0.01, 0.99),
    ) -> None:
        self.columns = columns
        self.mode = mode
        self.overrides = overrides
        self.threshold = threshold
        self.quantiles = quantiles

    def _kind(self, column: str, x: np.ndarray) -> str:
        chosen = (self.overrides or {}).get(column)
        if chosen is not None:
            return chosen
        if self.mode != "auto" or len(np.unique(x)) <= 2:
            return "none"
        if abs(skewness(x)) < self.threshold:
            return "none"
        return "log1p" if x.min() >= 0 else "yeo-johnson"

    def fit(self, X: Any, y: Any = None) -> SkewTransform:
        X = np.asarray(X, dtype=np.float64)
        names = list(self.columns) or [f"x{j}" for j in range(X.shape[1])]
        n = X.shape[1]
        kinds = np.empty(n, dtype=object)
        self.lambdas_ = np.full(n, np.nan)
        self.lower_ = np.full(n, -np.inf)
        self.upper_ = np.full(n, np.inf)
        self.skew_before_ = np.array([skewness(X[:, j]) for j in range(n)])
        for j in range(n):
            x = X[:, j]
            kind = self._kind(names[j], x)
            if kind == "log1p":
                self.lower_[j] = max(float(x.min()), 0.0) if len(x) else 0.0
            elif kind == "yeo-johnson":
                with warnings.catch_warnings():
                    # A few-row structure fit (apg.prepare.preprocessing) may not converge;
                    # the per-column fit on every row replaces its lambda.
                    warnings.simplefilter("ignore", RuntimeWarning)
                    pt = PowerTransformer(method="yeo-johnson", standardize=False)
                    self.lambdas_[j] = float(pt.fit(x.reshape(-1, 1)).lambdas_[0])
            elif kind == "winsorize":
                lo, hi = np.quantile(x, self.quantiles)
                self.lower_[j], self.upper_[j] = float(lo), float(hi)
            kinds[j] = kind
        self.kinds_ = kinds
        self.n_features_in_ = n
        after = self.transform(X)
        self.skew_after_ = np.array([skewness(after[:, j]) for j in range(n)])
        return self

    def transform(self, X: Any) -> np.ndarray:
        return apply_transforms(
            np.asarray(X, dtype=np.float64), self.kinds_, self.lambdas_, self.lower_, self.upper_
        )

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(input_features if input_features is not None else self.columns, object)

    def report(self) -> list[dict[str, Any]]:
        """One entry per transformed column: column, transform, skewness before and after."""
        return [
            {
                "column": str(col),
                "transform": str(kind),
                "skew_before": round(float(b), 3),
                "skew_after": round(float(a), 3),
            }
            for col, kind, b, a in zip(
                self.columns, self.kinds_, self.skew_before_, self.skew_after_, strict=True
            )
            if kind != "none"
        ]


def apply_transforms(
    X: np.ndarray,
    kinds: Sequence[str] | np.ndarray,
    lambdas: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
) -> np.ndarray:
    """The fitted transforms applied to the columns of ``X`` (shared with the stored model)."""
    out = np.array(X, dtype=np.float64, copy=True)
    for j, kind in enumerate(kinds):
        if kind == "log1p":
            out[:, j] = np.log1p(np.maximum(out[:, j], lower[j]))
        elif kind == "yeo-johnson":
            out[:, j] = yeo_johnson(out[:, j], float(lambdas[j]))
        elif kind == "winsorize":
            out[:, j] = np.clip(out[:, j], lower[j], upper[j])
    return out
