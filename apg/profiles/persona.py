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

from apg.prepare.dates import find_dates
from apg.prepare.features import FeatureFrame
from apg.prepare.matrix import Matrix
from apg.profiles.centres import CentreDistances, centre_distances
from apg.profiles.confidence import SAMPLE_ROWS, Confidence, level_of, persona_silhouettes
from apg.profiles.narrative import Narrative
from apg.profiles.outcomes import OutcomeStat, outcome_rules, outcomes_for
from apg.profiles.significance import vs_rest_p
from apg.search import leaderboard

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
    # Every value of the column lies in [0, 1] (a flag, rate or share): compared in percentage
    # points and multiples, never as "N% higher". None in older runs (then read from the means).
    bounded: bool | None = None


class CategoryContrast(BaseModel):
    """One category of a categorical clustering feature (behavioral or attitudinal) against
    everyone: the 0/1 indicator "is in this category" as a contrast.

    ``std_diff`` is on the scale of :class:`Contrast`: (persona share - everyone's share) /
    the indicator's standard deviation over everyone (ddof=1), so categories and numeric
    features are ranked together.
    """

    feature: str
    value: str
    role: Literal["behavioral", "attitudinal"]
    count: int  # members of the persona in the category
    share: float
    population_share: float
    lift: float | None  # share / population_share (None when everyone's share is 0)
    std_diff: float
    direction: Literal["higher", "lower", "same"]
    # Two-sided two-proportion z-test against the rest of the users (apg.profiles.significance).
    p_value: float


class CategoryShare(BaseModel):
    value: str
    count: int
    share: float
    population_share: float
    lift: float  # share / population_share
    # Two-sided two-proportion z-test of the share against the rest of the users (not against
    # everyone, who include the persona): apg.profiles.significance. None in older runs.
    p_value: float | None = None


class NumericSummary(BaseModel):
    mean: float | None
    median: float | None
    q1: float | None
    q3: float | None


class DateSummary(BaseModel):
    """Dates as ISO text (``2013-05-04``): the median and the middle half."""

    median: str | None
    q1: str | None
    q3: str | None


class DemographicProfile(BaseModel):
    kind: Literal["categorical", "numeric", "date"]
    missing: int = 0
    categories: list[CategoryShare] = Field(default_factory=list)
    cluster: NumericSummary | None = None
    population: NumericSummary | None = None
    cluster_dates: DateSummary | None = None
    population_dates: DateSummary | None = None


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
    # Per category of each categorical clustering feature, strongest first (same scale as
    # ``contrasts``). Empty in older runs.
    category_contrasts: list[CategoryContrast] = Field(default_factory=list)
    demographics: dict[str, DemographicProfile]
    representatives: list[str]
    atypical: Atypical
    # Outcome columns (features.outcome) against everyone: rates, means or shares.
    outcomes: dict[str, OutcomeStat] = Field(default_factory=dict)
    # How far the persona can be trusted (apg.profiles.confidence); None in older runs.
    confidence: Confidence | None = None
    narrative: Narrative | None = None


class OutlierProfile(BaseModel):
    """DBSCAN noise: users who fit no persona; anti-persona material."""

    size: int
    share: float
    contrasts: list[Contrast] = Field(default_factory=list)
    demographics: dict[str, DemographicProfile] = Field(default_factory=dict)
    outcomes: dict[str, OutcomeStat] = Field(default_factory=dict)


def _num(x: Any) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


class _Population:
    """Whole-population figures, computed once per column however many clusters ask."""

    def __init__(self, frame: FeatureFrame) -> None:
        self.frame = frame
        self._moments: dict[str, tuple[Any, Any]] = {}
        self._shares: dict[str, pd.Series] = {}
        self._counts: dict[str, pd.Series] = {}
        self._bounded: dict[str, bool] = {}
        self._summaries: dict[str, NumericSummary] = {}
        self._stamps: dict[str, pd.Series] = {}

    def moments(self, col: str) -> tuple[Any, Any]:
        """Mean and standard deviation (ddof=1) of a numeric column."""
        if col not in self._moments:
            values = self.frame.raw[col]
            self._moments[col] = (values.mean(), values.std(ddof=1))
        return self._moments[col]

    def summary(self, col: str) -> NumericSummary:
        """Mean and quartiles of a numeric demographic (a copy: profiles own theirs)."""
        if col not in self._summaries:
            self._summaries[col] = _summary(self.frame.raw[col])
        return self._summaries[col].model_copy()

    def stamps(self, col: str) -> pd.Series:
        """A demographic date column as timestamps (NaT: missing or unreadable)."""
        if col not in self._stamps:
            found = find_dates(self.frame.raw[col])
            values = found.stamps if found is not None else pd.Series(pd.NaT, index=range(0))
            self._stamps[col] = values.reset_index(drop=True)
        return self._stamps[col]

    def bounded(self, col: str) -> bool:
        """Whether every present value of a numeric column lies in [0, 1]."""
        if col not in self._bounded:
            values = self.frame.raw[col]
            lo, hi = values.min(), values.max()
            self._bounded[col] = bool(pd.notna(lo) and lo >= 0 and hi <= 1)
        return self._bounded[col]

    def counts(self, col: str) -> pd.Series:
        """How many users hold each value of a categorical column (as text, missing named)."""
        if col not in self._counts:
            self._counts[col] = _as_text(self.frame.raw[col]).value_counts()
        return self._counts[col]

    def shares(self, col: str) -> pd.Series:
        """The share of each value of a categorical column (as text, missing named)."""
        if col not in self._shares:
            self._shares[col] = _as_text(self.frame.raw[col]).value_counts(normalize=True)
        return self._shares[col]


def _as_text(values: pd.Series) -> pd.Series:
    return values.astype("string").fillna("(missing)")


def contrasts_for(
    frame: FeatureFrame, mask: np.ndarray, population: _Population | None = None
) -> list[Contrast]:
    population = population or _Population(frame)
    out = []
    for col in frame.numeric_features:
        values = frame.raw[col]
        pop_mean, pop_std = population.moments(col)
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
                bounded=population.bounded(col),
            )
        )
    out.sort(key=lambda c: (-abs(c.std_diff), c.feature))
    return out


def category_contrasts_for(
    frame: FeatureFrame, mask: np.ndarray, population: _Population | None = None
) -> list[CategoryContrast]:
    """Every category of every categorical clustering feature as a 0/1 indicator against
    everyone, strongest first (see :class:`CategoryContrast`)."""
    population = population or _Population(frame)
    size = int(np.sum(mask))
    out: list[CategoryContrast] = []
    for col in frame.categorical_features:
        pop_counts = population.counts(col)
        n_all = int(pop_counts.sum())
        if size == 0 or n_all < 2:
            continue
        counts = _as_text(frame.raw[col][mask]).value_counts()
        for value, pop_count in pop_counts.items():
            count = int(counts.get(value, 0))
            share, pop_share = count / size, int(pop_count) / n_all
            # The indicator's SD over everyone (ddof=1, as for numeric contrasts).
            sd = math.sqrt(pop_share * (1 - pop_share) * n_all / (n_all - 1))
            diff = (share - pop_share) / sd if sd > 0 else 0.0
            out.append(
                CategoryContrast(
                    feature=col,
                    value=str(value),
                    role=frame.role_of(col),
                    count=count,
                    share=share,
                    population_share=pop_share,
                    lift=share / pop_share if pop_share > 0 else None,
                    std_diff=diff,
                    direction="higher" if diff > 0 else "lower" if diff < 0 else "same",
                    p_value=vs_rest_p(count, size, int(pop_count), n_all),
                )
            )
    out.sort(key=lambda c: (-abs(c.std_diff), c.feature, c.value))
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


def _date_summary(stamps: pd.Series) -> DateSummary:
    present = stamps.dropna()
    if present.empty:
        return DateSummary(median=None, q1=None, q3=None)
    # Quantiles as the lower of two middle dates: always a date that occurs.
    ordered = present.sort_values(kind="stable")
    at = [ordered.iloc[int(np.floor(q * (len(ordered) - 1)))] for q in (0.5, 0.25, 0.75)]
    median, q1, q3 = (pd.Timestamp(v).date().isoformat() for v in at)
    return DateSummary(median=median, q1=q1, q3=q3)


def demographics_for(
    frame: FeatureFrame, mask: np.ndarray, population: _Population | None = None
) -> dict[str, DemographicProfile]:
    population = population or _Population(frame)
    out: dict[str, DemographicProfile] = {}
    for col in frame.demographic:
        values = frame.raw[col]
        members = values[mask]
        missing = int(members.isna().sum())
        if col in frame.demographic_dates:
            stamps = population.stamps(col)
            out[col] = DemographicProfile(
                kind="date",
                missing=int(stamps[mask].isna().sum()),
                cluster_dates=_date_summary(stamps[mask]),
                population_dates=_date_summary(stamps),
            )
            continue
        if col in frame.numeric_demographics:
            out[col] = DemographicProfile(
                kind="numeric",
                missing=missing,
                cluster=_summary(members),
                population=population.summary(col),
            )
            continue
        pop = population.shares(col)
        pop_counts = population.counts(col)
        n_all = int(pop_counts.sum())
        counts = _as_text(members).value_counts()
        total = int(counts.sum())
        cats = [
            CategoryShare(
                value=str(v),
                count=int(c),
                share=c / total,
                population_share=float(pop[v]),
                lift=(c / total) / float(pop[v]),
                p_value=vs_rest_p(int(c), total, int(pop_counts[v]), n_all),
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


class Profiler:
    """The profile stage on a matrix held whole or read in batches.

    Each row's distance to its cluster's centre picks the representatives and atypical
    members. In memory it comes from X at once; for a streamed matrix the centres are summed
    while the search places the rows (:meth:`observe`, given to ``assign_everyone``), so only
    one more pass reads the table, for the distances.
    """

    def __init__(self, frame: FeatureFrame, matrix: Matrix) -> None:
        self.frame, self.matrix = frame, matrix
        self._sums: CentreDistances | None = None

    def observe(self, X_batch: np.ndarray, labels_batch: np.ndarray) -> None:
        if self.matrix.in_memory:
            return
        if self._sums is None:
            self._sums = CentreDistances()
        self._sums.add(X_batch, labels_batch)

    def profiles(self, labels: np.ndarray) -> tuple[list[PersonaProfile], OutlierProfile]:
        if self._sums is None:  # in memory, or every row was read for an exact search
            distances = centre_distances(self.matrix.all(), labels)
        else:
            distances = np.empty(len(labels), dtype=np.float64)
            lo = 0
            for X in self.matrix.batches(leaderboard.ASSIGN_BATCH_ROWS):
                hi = lo + len(X)
                distances[lo:hi] = self._sums.distances(X, labels[lo:hi])
                lo = hi
        return build_profiles_from_distances(self.frame, labels, distances)


def build_profiles(
    frame: FeatureFrame, X: np.ndarray, labels: np.ndarray
) -> tuple[list[PersonaProfile], OutlierProfile]:
    """Profile every cluster of ``labels`` (-1 is noise); personas are ordered by size.

    ``frame`` holds the rows that were clustered, aligned with ``X`` and ``labels``.
    """
    return build_profiles_from_distances(frame, labels, centre_distances(X, labels))


def build_profiles_from_distances(
    frame: FeatureFrame, labels: np.ndarray, distances: np.ndarray
) -> tuple[list[PersonaProfile], OutlierProfile]:
    """:func:`build_profiles` given each row's distance to its cluster's centre instead of X.

    ``distances`` comes from ``apg.profiles.centres``: ``centre_distances(X, labels)``, or streamed
    from batches of X with ``CentreDistances``; noise rows' values are not read.
    """
    n = len(labels)
    if len(distances) != n:
        raise ValueError(f"{len(distances)} distances for {n} labels")
    clusters = sorted(
        (int(c) for c in np.unique(labels) if c >= 0), key=lambda c: (-int(np.sum(labels == c)), c)
    )
    population = _Population(frame)
    rules = outcome_rules(frame)
    profiles = []
    for rank, cluster in enumerate(clusters, start=1):
        mask = labels == cluster
        members = np.flatnonzero(mask)
        dist = distances[members]
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
                contrasts=contrasts_for(frame, mask, population),
                category_contrasts=category_contrasts_for(frame, mask, population),
                demographics=demographics_for(frame, mask, population),
                representatives=_ids_at(frame.ids, nearest),
                atypical=Atypical(count=len(far), ids=_ids_at(frame.ids, far[:N_REPRESENTATIVES])),
                outcomes=outcomes_for(rules, mask),
            )
        )
    noise = labels < 0
    outliers = OutlierProfile(size=int(noise.sum()), share=float(noise.sum() / n) if n else 0.0)
    if noise.any():
        outliers.contrasts = contrasts_for(frame, noise, population)
        outliers.demographics = demographics_for(frame, noise, population)
        outliers.outcomes = outcomes_for(rules, noise)
    return profiles, outliers


def _ids_at(ids: pd.Series, rows: np.ndarray) -> list[str]:
    """The ids of some rows as text; only those rows are converted (all ids as Python
    strings would be ~60 MB per million users)."""
    return [str(i) for i in ids.iloc[rows].astype(str).to_numpy()]


def rate_confidence(
    personas: list[PersonaProfile],
    matrix: Matrix,
    labels: np.ndarray,
    stability: dict[int, float],
    seed: int,
) -> None:
    """Give each persona its :class:`Confidence` (``stability``: per cluster, when measured)."""
    rows = leaderboard.sample_rows(len(labels), SAMPLE_ROWS, seed)
    silhouettes = persona_silhouettes(matrix, labels, rows)
    for p in personas:
        p.confidence = level_of(p.size, silhouettes.get(p.cluster), stability.get(p.cluster))
