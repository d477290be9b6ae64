"""``search:``: the candidate grid, the selection rules, stability and scale settings."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from apg.config.base import Strict


def _k_range(value: Any) -> list[int]:
    """``[2, 10]`` is an inclusive range; ``4`` or ``[4]`` is one value; three or more
    integers are the values themselves (which is also how a validated config dumps)."""

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if is_int(value):
        value = [value]
    if not isinstance(value, list | tuple) or not value or not all(is_int(v) for v in value):
        raise ValueError(f"k must be an integer or a [min, max] pair of integers, got {value!r}")
    if len(value) == 2:
        lo, hi = value
        if lo < 2 or hi < lo:
            raise ValueError(f"k range [{lo}, {hi}] must satisfy 2 <= min <= max")
        return list(range(lo, hi + 1))
    if min(value) < 2:
        raise ValueError(f"every k must be at least 2, got {min(value)}")
    return sorted(set(value))


class KMeansGrid(Strict):
    k: list[int] = Field(default_factory=lambda: list(range(2, 11)))
    n_init: int = Field(10, ge=1)

    @field_validator("k", mode="before")
    @classmethod
    def _norm_k(cls, v: Any) -> list[int]:
        return _k_range(v)


class AgglomerativeGrid(Strict):
    k: list[int] = Field(default_factory=lambda: list(range(2, 11)))
    linkage: list[Literal["ward", "average", "complete"]] = Field(
        default_factory=lambda: ["ward", "average", "complete"], min_length=1
    )

    @field_validator("k", mode="before")
    @classmethod
    def _norm_k(cls, v: Any) -> list[int]:
        return _k_range(v)


class DbscanGrid(Strict):
    eps: Literal["auto"] | list[Annotated[float, Field(gt=0)]] = "auto"
    min_samples: list[Annotated[int, Field(ge=2)]] = Field(
        default_factory=lambda: [5, 10, 20], min_length=1
    )
    # Quantiles of the k-distance curve used when eps is "auto": eps at quantile q makes a
    # share q of users core points.
    eps_quantiles: list[Annotated[float, Field(gt=0, lt=1)]] = Field(
        default_factory=lambda: [0.7, 0.75, 0.8, 0.85, 0.9, 0.93, 0.96, 0.98], min_length=1
    )
    # The neighbour pass holds every pair within the largest eps (about 24 bytes a pair at
    # its peak): an eps whose estimated pairs exceed this is skipped, with a progress line.
    # Such an eps joins most users into one cluster anyway. null: no limit.
    max_pairs: int | None = Field(25_000_000, ge=1)


class StabilityConfig(Strict):
    """Refits on seeded subsamples (apg.search.stability)."""

    resamples: int = Field(10, ge=2, le=200)
    fraction: float = Field(0.8, gt=0, lt=1)
    # Subsamples are at most this many users (m-out-of-n above max_rows / fraction).
    max_rows: int = Field(4000, ge=50)


class SearchConfig(Strict):
    kmeans: KMeansGrid | None = Field(default_factory=KMeansGrid)
    agglomerative: AgglomerativeGrid | None = Field(default_factory=AgglomerativeGrid)
    dbscan: DbscanGrid | None = Field(default_factory=DbscanGrid)
    max_clusters: int = Field(10, ge=2)
    min_cluster_share: float = Field(0.02, ge=0, lt=0.5)
    # A persona of a handful of users is an anecdote, and small-cell rules (narration.min_cell)
    # would hide its demographics anyway; on small tables this binds before the share does.
    min_cluster_size: int = Field(5, ge=1)
    # Every candidate is fitted, scored and resampled for stability: the default grid names
    # 60; a grid of thousands runs for hours.
    max_candidates: int = Field(500, ge=1)
    max_noise_share: float = Field(0.15, ge=0, le=1)
    # NumPy and scikit-learn take seeds in [0, 2**32 - 1].
    seed: int = Field(0, ge=0, le=2**32 - 1)
    # Up to this many rows every candidate is fitted on all rows; above it, on a seeded sample
    # of ``sample_size`` rows, and everyone is then assigned to the winner's clusters. An exact
    # tree holds a float64 distance matrix of 4 n^2 bytes (400 MB at 10,000 rows) next to the
    # ~450 MiB search: at 12,000 a default run passed 1 GiB (benchmarks/exact_vs_sample.py).
    exact_max_rows: int = Field(10_000, ge=100)
    sample_size: int = Field(5_000, ge=100)
    backend: Literal["local", "dask"] = "local"
    dask_address: str | None = None
    # A single Parquet source can be streamed: read a column or a batch of rows at a time,
    # never whole (same results). ``auto`` streams when a whole-table run would need more
    # than ``stream_memory_mib`` (default: half the memory available when the run starts).
    stream: Literal["auto", "on", "off"] = "auto"
    stream_memory_mib: int | None = Field(None, ge=1)
    # How the winner is chosen (README "Selection rules"): `stable` weighs stability, near
    # ties, the persona count and balance; `silhouette` is the bare highest silhouette.
    selection: Literal["stable", "silhouette"] = "stable"
    stability: StabilityConfig | None = Field(default_factory=StabilityConfig)
    min_stability: float = Field(0.6, ge=0, le=1)
    silhouette_tolerance: float = Field(0.02, ge=0, le=1)
    stability_tolerance: float = Field(0.05, ge=0, le=1)
    preferred_personas: tuple[int, int] = (3, 8)
    # A winner below this silhouette (Kaufman & Rousseeuw: < 0.25, no substantial structure)
    # or below min_stability makes the run "weak" (README "Weak structure").
    weak_silhouette: float = Field(0.25, ge=0, le=1)

    @field_validator("preferred_personas")
    @classmethod
    def _preferred(cls, v: tuple[int, int]) -> tuple[int, int]:
        lo, hi = v
        if not 2 <= lo <= hi:
            raise ValueError(f"preferred_personas [{lo}, {hi}] must satisfy 2 <= min <= max")
        return v

    @model_validator(mode="after")
    def _k_within_max_clusters(self) -> SearchConfig:
        for name in ("kmeans", "agglomerative"):
            grid = getattr(self, name)
            if grid is not None and max(grid.k) > self.max_clusters:
                raise ValueError(
                    f"{name}.k goes up to {max(grid.k)} but max_clusters is "
                    f"{self.max_clusters}: candidates above it could never be chosen; lower "
                    f"the k range or raise search.max_clusters"
                )
        return self

    @model_validator(mode="after")
    def _something_to_try(self) -> SearchConfig:
        if self.kmeans is None and self.agglomerative is None and self.dbscan is None:
            raise ValueError("all algorithms are disabled; enable kmeans, agglomerative or dbscan")
        return self

    def grid_size(self) -> int:
        """How many candidates the grid names (DBSCAN: eps values x min_samples)."""
        size = len(self.kmeans.k) if self.kmeans else 0
        if self.agglomerative:
            size += len(self.agglomerative.k) * len(self.agglomerative.linkage)
        if self.dbscan:
            eps = self.dbscan.eps_quantiles if self.dbscan.eps == "auto" else self.dbscan.eps
            size += len(eps) * len(self.dbscan.min_samples)
        return size

    @model_validator(mode="after")
    def _grid_within_max_candidates(self) -> SearchConfig:
        if self.grid_size() > self.max_candidates:
            raise ValueError(
                f"the grid names {self.grid_size():,} candidates, more than max_candidates "
                f"({self.max_candidates:,}); shorten the k, linkage, eps or min_samples lists, "
                "or raise search.max_candidates"
            )
        return self
