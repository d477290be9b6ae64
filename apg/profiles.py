"""Per-cluster profiles: size, centroid in the data's own units, contrasts, demographics.

Everything here is computed from the raw (un-imputed, unscaled) columns so numbers read in the
data's own units; only the choice of representative users uses the clustering space.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from apg.features import FeatureFrame
from apg.narration.schema import Narrative

N_REPRESENTATIVES = 10
# A member counts as atypical when its distance to the cluster centre is beyond
# Q3 + 3 * IQR of its cluster's distances (Tukey's "far out" fence).
ATYPICAL_FENCE = 3.0


class Contrast(BaseModel):
    feature: str
    role: Literal["behavioral", "attitudinal"]
    cluster_mean: float
    population_mean: float
    # (cluster mean - population mean) / population standard deviation (ddof=1).
    std_diff: float
    direction: Literal["higher", "lower", "same"]


class CategoryShare(BaseModel):
    value: str
    count: int
    share: float
    population_share: float
    lift: float  # share / population_share


class NumericSummary(BaseModel):
    mean: float | None
    median: float | None
    q1: float | None
    q3: float | None


class DemographicProfile(BaseModel):
    kind: Literal["categorical", "numeric"]
    missing: int = 0
    categories: list[CategoryShare] = Field(default_factory=list)
    cluster: NumericSummary | None = None
    population: NumericSummary | None = None


class Atypical(BaseModel):
    count: int
    ids: list[str]


class PersonaProfile(BaseModel):
    persona_id: str
    cluster: int
    size: int
    share: float
    centroid: dict[str, float | None]
    # Categorical clustering features: share of each category within the cluster.
    categories: dict[str, dict[str, float]] = Field(default_factory=dict)
    contrasts: list[Contrast]
    demographics: dict[str, DemographicProfile]
    representatives: list[str]
    atypical: Atypical
    narrative: Narrative | None = None


class OutlierProfile(BaseModel):
    """DBSCAN noise: users who fit no persona; anti-persona material."""

    size: int
    share: float
    contrasts: list[Contrast] = Field(default_factory=list)
    demographics: dict[str, DemographicProfile] = Field(default_factory=dict)


def _num(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def contrasts_for(frame: FeatureFrame, mask: np.ndarray) -> list[Contrast]:
    out = []
    for col in frame.numeric_features:
        values = frame.raw[col]
        pop_mean = values.mean()
        pop_std = values.std(ddof=1)
        cl_mean = values[mask].mean()
        if pd.isna(cl_mean) or pd.isna(pop_mean):
            continue
        diff = 0.0 if not pop_std or pd.isna(pop_std) else (cl_mean - pop_mean) / pop_std
        direction: Literal["higher", "lower", "same"] = (
            "higher" if diff > 0 else "lower" if diff < 0 else "same"
        )
        out.append(
            Contrast(
                feature=col,
                role=frame.role_of(col),
                cluster_mean=float(cl_mean),
                population_mean=float(pop_mean),
                std_diff=float(diff),
                direction=direction,
            )
        )
    out.sort(key=lambda c: (-abs(c.std_diff), c.feature))
    return out


def _summary(values: pd.Series) -> NumericSummary:
    v = values.dropna()
    if v.empty:
        return NumericSummary(mean=None, median=None, q1=None, q3=None)
    return NumericSummary(
        mean=float(v.mean()),
        median=float(v.median()),
        q1=float(v.quantile(0.25)),
        q3=float(v.quantile(0.75)),
    )


def demographics_for(frame: FeatureFrame, mask: np.ndarray) -> dict[str, DemographicProfile]:
    out: dict[str, DemographicProfile] = {}
    for col in frame.demographic:
        values = frame.raw[col]
        members = values[mask]
        missing = int(members.isna().sum())
        if col in frame.numeric_demographics:
            out[col] = DemographicProfile(
                kind="numeric",
                missing=missing,
                cluster=_summary(members),
                population=_summary(values),
            )
            continue
        text = values.astype("string").fillna("(missing)")
        pop = text.value_counts(normalize=True)
        counts = text[mask].value_counts()
        total = int(counts.sum())
        cats = [
            CategoryShare(
                value=str(v),
                count=int(c),
                share=c / total,
                population_share=float(pop[v]),
                lift=(c / total) / float(pop[v]),
            )
            for v, c in counts.items()
        ]
        cats.sort(key=lambda c: (-c.count, c.value))
        out[col] = DemographicProfile(kind="categorical", missing=missing, categories=cats)
    return out


def _categories(frame: FeatureFrame, mask: np.ndarray) -> dict[str, dict[str, float]]:
    out = {}
    for col in frame.categorical_features:
        shares = (
            frame.raw[col][mask].astype("string").fillna("(missing)").value_counts(normalize=True)
        )
        out[col] = {
            str(k): float(v) for k, v in sorted(shares.items(), key=lambda kv: (-kv[1], kv[0]))
        }
    return out


def build_profiles(
    frame: FeatureFrame, X: np.ndarray, labels: np.ndarray
) -> tuple[list[PersonaProfile], OutlierProfile]:
    """Profile every cluster of ``labels`` (-1 is noise); personas are ordered by size.

    ``frame`` holds the rows that were clustered, aligned with ``X`` and ``labels``.
    """
    n = len(labels)
    clusters = sorted(
        (int(c) for c in np.unique(labels) if c >= 0), key=lambda c: (-int(np.sum(labels == c)), c)
    )
    ids = frame.ids.astype(str).to_numpy()
    profiles = []
    for rank, cluster in enumerate(clusters, start=1):
        mask = labels == cluster
        members = np.flatnonzero(mask)
        centre = X[members].mean(axis=0)
        dist = np.sqrt(((X[members] - centre) ** 2).sum(axis=1))
        # Stable sort so ties resolve by row order: determinism across runs.
        nearest = members[np.argsort(dist, kind="stable")[:N_REPRESENTATIVES]]
        q1, q3 = np.percentile(dist, [25, 75])
        beyond = np.flatnonzero(dist > q3 + ATYPICAL_FENCE * (q3 - q1))
        far = members[beyond[np.argsort(-dist[beyond], kind="stable")]]
        profiles.append(
            PersonaProfile(
                persona_id=f"P{rank}",
                cluster=cluster,
                size=int(mask.sum()),
                share=float(mask.sum() / n),
                centroid={c: _num(frame.raw[c][mask].mean()) for c in frame.numeric_features},
                categories=_categories(frame, mask),
                contrasts=contrasts_for(frame, mask),
                demographics=demographics_for(frame, mask),
                representatives=[str(i) for i in ids[nearest]],
                atypical=Atypical(
                    count=len(far), ids=[str(i) for i in ids[far[:N_REPRESENTATIVES]]]
                ),
            )
        )
    noise = labels < 0
    outliers = OutlierProfile(size=int(noise.sum()), share=float(noise.sum() / n) if n else 0.0)
    if noise.any():
        outliers.contrasts = contrasts_for(frame, noise)
        outliers.demographics = demographics_for(frame, noise)
    return profiles, outliers
