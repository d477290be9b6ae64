"""Every candidate on the grid, fitted: K-Means per k, one tree per linkage cut at every k,
and every DBSCAN setting from one neighbour pass."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

from apg.config import DbscanGrid, SearchConfig
from apg.search import kernels
from apg.search.eps_grid import estimated_pairs, kdistance_eps_grid
from apg.search.neighbors import DbscanNeighbors

Progress = Callable[[str], None]


def workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


@dataclass
class Candidate:
    algorithm: str
    params: dict[str, Any]
    labels: np.ndarray = field(repr=False)
    seconds: float = 0.0
    inertia: float | None = None
    centers: np.ndarray | None = field(default=None, repr=False)
    core_indices: np.ndarray | None = field(default=None, repr=False)
    n_clusters: int = 0
    noise_share: float = 0.0
    min_cluster_share: float = 0.0
    min_cluster_size: int = 0
    silhouette: float = math.nan
    davies_bouldin: float = math.nan
    calinski_harabasz: float = math.nan
    eligible: bool = False
    reason: str = ""
    selected: bool = False
    # The silhouette used for choosing: DBSCAN's noise points count as 0 (silhouette above
    # is over clustered users only). Equal to silhouette without noise.
    choice_silhouette: float = math.nan
    # Mean ARI with refits on subsamples (apg.search.stability); None: not refitted.
    stability: float | None = None
    cluster_stability: dict[int, float] = field(default_factory=dict, repr=False)
    # Entropy of the cluster size shares over log(k): 1 = equal sizes (noise left out).
    evenness: float = math.nan

    @property
    def key(self) -> str:
        inner = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.algorithm}({inner})"


def kmeans_candidates(X: np.ndarray, cfg: SearchConfig, progress: Progress) -> list[Candidate]:
    assert cfg.kmeans is not None
    grid = cfg.kmeans

    def fit(k: int) -> Candidate:
        start = time.perf_counter()
        # OpenMP limits are per thread: the limit around the pool does not reach this one.
        with threadpool_limits(limits=1, user_api="openmp"):
            model = KMeans(n_clusters=k, n_init=grid.n_init, random_state=cfg.seed).fit(X)
        return Candidate(
            "kmeans",
            {"k": k},
            model.labels_.astype(np.intp),
            seconds=time.perf_counter() - start,
            inertia=float(model.inertia_),
            centers=model.cluster_centers_,
        )

    ks = [k for k in grid.k if k < len(X)]
    # One single-threaded fit per worker: KMeans' OpenMP threads spin while waiting, and on a
    # busy 2-core machine nested pools made the grid 20x slower than this layout.
    with threadpool_limits(limits=1), ThreadPoolExecutor(max_workers=workers()) as pool:
        out = list(pool.map(fit, ks))
    progress(f"search: kmeans k={ks[0]}..{ks[-1]}" if ks else "search: kmeans skipped")
    return out


def timed_trees(X: np.ndarray, linkages: list[str]) -> tuple[dict[str, np.ndarray], float]:
    """One condensed distance matrix shared by every linkage; one tree per linkage."""
    start = time.perf_counter()
    trees = kernels.linkage_matrices(X, linkages)
    return trees, time.perf_counter() - start


def agglomerative_candidates(
    X: np.ndarray,
    cfg: SearchConfig,
    progress: Progress,
    trees: dict[str, np.ndarray],
    tree_seconds: float | None = None,
) -> list[Candidate]:
    """Cut one tree per linkage at every k. ``trees`` may arrive already built (by a worker
    process, with ``tree_seconds`` its build time); missing ones are built here."""
    assert cfg.agglomerative is not None
    linkages = list(cfg.agglomerative.linkage)
    if not tree_ks(X, cfg):
        return []
    if not all(m in trees for m in linkages):
        built, tree_seconds = timed_trees(X, linkages)
        trees.update(built)
    shared = (tree_seconds or 0.0) / len(linkages)
    return [c for m in linkages for c in tree_cuts(X, cfg, progress, m, trees[m], shared)]


def tree_ks(X: np.ndarray, cfg: SearchConfig) -> list[int]:
    assert cfg.agglomerative is not None
    return [k for k in cfg.agglomerative.k if k < len(X)]


def tree_cuts(
    X: np.ndarray, cfg: SearchConfig, progress: Progress, linkage: str, Z: np.ndarray, s: float
) -> list[Candidate]:
    """One candidate per k from the tree ``Z``, which took ``s`` seconds to build."""
    ks = tree_ks(X, cfg)
    t0 = time.perf_counter()
    cuts = kernels.labels_from_linkage(Z, ks)
    per = (s + time.perf_counter() - t0) / len(ks)
    out = [
        Candidate("agglomerative", {"k": k, "linkage": linkage}, cuts[k], seconds=per) for k in ks
    ]
    progress(f"search: agglomerative linkage={linkage}, k={ks[0]}..{ks[-1]}")
    return out


def dbscan_grid(X: np.ndarray, cfg: SearchConfig, progress: Progress) -> list[Candidate]:
    assert cfg.dbscan is not None
    out: list[Candidate] = []
    # Its BLAS products are small blocks: a second BLAS thread only spins, and in exact mode
    # the other core is building trees.
    with threadpool_limits(limits=1):
        groups = dbscan_candidates(X, cfg.dbscan, progress)
    for m, group in groups:
        out += group
        progress(f"search: dbscan min_samples={m}, {len(group)} eps values")
    return out


def dbscan_candidates(
    X: np.ndarray, grid: DbscanGrid, progress: Progress | None = None
) -> list[tuple[int, list[Candidate]]]:
    """Every (eps, min_samples) of the grid from one neighbour pass, grouped by min_samples;
    an eps whose neighbourhoods would not fit ``grid.max_pairs`` is skipped, and so is a
    min_samples of at least the number of rows (every point would need every other as a
    neighbour: one cluster or all noise, and the k-distance curve has no such neighbour)."""
    start = time.perf_counter()
    usable = [m for m in grid.min_samples if m < X.shape[0]]
    if len(usable) < len(grid.min_samples) and progress is not None:
        progress(
            f"search: dbscan min_samples >= {X.shape[0]} skipped: the table has {X.shape[0]} rows"
        )
    if not usable:
        return []
    grid = grid.model_copy(update={"min_samples": usable})
    if grid.eps == "auto":
        eps_by_m = kdistance_eps_grid(X, grid.min_samples, grid.eps_quantiles)
    else:
        eps_by_m = {m: sorted(grid.eps) for m in grid.min_samples}
    all_eps = sorted({e for eps in eps_by_m.values() for e in eps})
    if all_eps and grid.max_pairs is not None:
        estimates = estimated_pairs(X, all_eps)
        fits = [e for e, pairs in zip(all_eps, estimates, strict=True) if pairs <= grid.max_pairs]
        if len(fits) < len(all_eps) and progress is not None:
            over = all_eps[len(fits)]
            progress(
                f"search: dbscan eps >= {over} skipped: about "
                f"{estimates[len(fits)] / 1e6:,.0f}M neighbour pairs > "
                f"search.dbscan.max_pairs={grid.max_pairs / 1e6:,.0f}M"
            )
        eps_by_m = {m: [e for e in eps if e in fits] for m, eps in eps_by_m.items()}
        all_eps = fits
    if not all_eps:
        return []
    # Told every eps up front, it buckets the pairs once; the fits below ask for increasing
    # eps per min_samples, which lets each reuse the previous one's clusters.
    neighbours = DbscanNeighbors(X, all_eps)
    shared = (time.perf_counter() - start) / sum(len(v) for v in eps_by_m.values())
    out = []
    for m in grid.min_samples:
        group = []
        for eps in eps_by_m[m]:
            t0 = time.perf_counter()
            labels, core = neighbours.fit(eps, m)
            seconds = shared + time.perf_counter() - t0
            group.append(
                Candidate(
                    "dbscan",
                    {"eps": eps, "min_samples": m},
                    labels,
                    seconds=seconds,
                    core_indices=core,
                )
            )
        out.append((m, group))
    return out
