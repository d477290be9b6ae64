"""The clustering search: every candidate on the grid, scored, with one winner.

Candidates share work: one tree per linkage cut at every k (``apg.kernels``, built in worker
processes by ``apg.trees_worker``), one bucketed pair pass for all DBSCAN settings
(``apg.neighbors``), and chunked passes that score many candidates' silhouettes at once
(``apg.silhouettes``). Labels and scores are those of scikit-learn, in the clustered space.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score
from threadpoolctl import threadpool_limits

from apg import kernels
from apg.clusters import ClusterModel
from apg.config import DbscanGrid, SearchConfig
from apg.errors import SearchError
from apg.neighbors import DbscanNeighbors, kdistance_eps_grid
from apg.silhouettes import silhouette_many
from apg.trees_worker import TreeJobs

ALGORITHM_ORDER = {"kmeans": 0, "agglomerative": 1, "dbscan": 2}
# Silhouettes equal to this many decimals are a tie (guards against float noise between
# algorithms that find the same partition).
TIE_DECIMALS = 12
# From this many rows the hierarchical trees are built in a worker process (measured: below
# it, starting the process costs more than the overlap saves).
PARALLEL_TREES_MIN_ROWS = 4000
# Tree worker processes: two overlap the trees with each other and with K-Means and DBSCAN
# on a 2-core machine (20,000 rows: 43 s with one worker; see README "Performance").
TREE_PROCESSES = 2

Progress = Callable[[str], None]


def _workers() -> int:
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
    silhouette: float = math.nan
    davies_bouldin: float = math.nan
    calinski_harabasz: float = math.nan
    eligible: bool = False
    reason: str = ""
    selected: bool = False

    @property
    def key(self) -> str:
        inner = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.algorithm}({inner})"


@dataclass
class SearchResult:
    candidates: list[Candidate]
    winner: Candidate
    elbow_k: int | None
    wcss: dict[int, float]
    labels: np.ndarray = field(repr=False)  # the winner's cluster for every row of X
    model: ClusterModel = field(repr=False)  # assigns new users like the winner
    mode: Literal["exact", "sample"] = "exact"
    # Sample mode: the rows the candidates were fitted on, and the silhouette of the final
    # labels of all users measured on a fresh sample (shows the assignment held).
    sample_indices: np.ndarray | None = field(default=None, repr=False)
    assigned_silhouette: float | None = None
    assign_seconds: float | None = None  # sample mode: placing every row and checking it
    linkage_trees: dict[str, np.ndarray] = field(default_factory=dict, repr=False)


def _kmeans(X: np.ndarray, cfg: SearchConfig, progress: Progress) -> list[Candidate]:
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
    with threadpool_limits(limits=1), ThreadPoolExecutor(max_workers=_workers()) as pool:
        out = list(pool.map(fit, ks))
    progress(f"search: kmeans k={ks[0]}..{ks[-1]}" if ks else "search: kmeans skipped")
    return out


def timed_trees(X: np.ndarray, linkages: list[str]) -> tuple[dict[str, np.ndarray], float]:
    """One condensed distance matrix shared by every linkage; one tree per linkage."""
    start = time.perf_counter()
    trees = kernels.linkage_matrices(X, linkages)
    return trees, time.perf_counter() - start


def _agglomerative(
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
    if not _tree_ks(X, cfg):
        return []
    if not all(m in trees for m in linkages):
        built, tree_seconds = timed_trees(X, linkages)
        trees.update(built)
    shared = (tree_seconds or 0.0) / len(linkages)
    return [c for m in linkages for c in _cuts(X, cfg, progress, m, trees[m], shared)]


def _tree_ks(X: np.ndarray, cfg: SearchConfig) -> list[int]:
    assert cfg.agglomerative is not None
    return [k for k in cfg.agglomerative.k if k < len(X)]


def _cuts(
    X: np.ndarray, cfg: SearchConfig, progress: Progress, linkage: str, Z: np.ndarray, s: float
) -> list[Candidate]:
    """One candidate per k from the tree ``Z``, which took ``s`` seconds to build."""
    ks = _tree_ks(X, cfg)
    t0 = time.perf_counter()
    cuts = kernels.labels_from_linkage(Z, ks)
    per = (s + time.perf_counter() - t0) / len(ks)
    out = [
        Candidate("agglomerative", {"k": k, "linkage": linkage}, cuts[k], seconds=per) for k in ks
    ]
    progress(f"search: agglomerative linkage={linkage}, k={ks[0]}..{ks[-1]}")
    return out


def _dbscan(X: np.ndarray, cfg: SearchConfig, progress: Progress) -> list[Candidate]:
    assert cfg.dbscan is not None
    out: list[Candidate] = []
    # Its BLAS products are small blocks: a second BLAS thread only spins, and in exact mode
    # the other core is building trees.
    with threadpool_limits(limits=1):
        groups = dbscan_candidates(X, cfg.dbscan)
    for m, group in groups:
        out += group
        progress(f"search: dbscan min_samples={m}, {len(group)} eps values")
    return out


def dbscan_candidates(X: np.ndarray, grid: DbscanGrid) -> list[tuple[int, list[Candidate]]]:
    """Every (eps, min_samples) of the grid from one neighbour pass, grouped by min_samples."""
    start = time.perf_counter()
    if grid.eps == "auto":
        eps_by_m = kdistance_eps_grid(X, grid.min_samples, grid.eps_quantiles)
    else:
        eps_by_m = {m: sorted(grid.eps) for m in grid.min_samples}
    all_eps = sorted({e for eps in eps_by_m.values() for e in eps})
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


def _score(
    X: np.ndarray, candidates: list[Candidate], cfg: SearchConfig, threads: int | None = None
) -> None:
    n = len(X)
    for c in candidates:
        valid = c.labels >= 0
        sizes = np.bincount(c.labels[valid]) if valid.any() else np.array([], dtype=int)
        sizes = sizes[sizes > 0]
        c.n_clusters = len(sizes)
        c.noise_share = float(1 - valid.mean())
        c.min_cluster_share = float(sizes.min() / n) if len(sizes) else 0.0
    scored = [c for c in candidates if c.n_clusters >= 2]
    silhouettes = silhouette_many(X, [c.labels for c in scored], threads=threads)
    for c, s in zip(scored, silhouettes, strict=True):
        c.silhouette = float(s)
        valid = c.labels >= 0
        if valid.sum() > c.n_clusters:
            c.davies_bouldin = float(davies_bouldin_score(X[valid], c.labels[valid]))
            c.calinski_harabasz = float(calinski_harabasz_score(X[valid], c.labels[valid]))
    for c in candidates:
        reasons = []
        if c.n_clusters < 2:
            reasons.append(f"{c.n_clusters} cluster(s), needs at least 2")
        if c.n_clusters > cfg.max_clusters:
            reasons.append(f"{c.n_clusters} clusters > max_clusters={cfg.max_clusters}")
        if c.noise_share > cfg.max_noise_share:
            reasons.append(f"noise {c.noise_share:.1%} > max_noise_share={cfg.max_noise_share:.1%}")
        if c.n_clusters >= 2 and c.min_cluster_share < cfg.min_cluster_share:
            reasons.append(
                f"smallest cluster {c.min_cluster_share:.1%} < "
                f"min_cluster_share={cfg.min_cluster_share:.1%}"
            )
        if c.n_clusters >= 2 and math.isnan(c.silhouette):
            reasons.append("silhouette undefined")
        c.eligible = not reasons
        c.reason = "; ".join(reasons)


def rank_key(c: Candidate, index: int) -> tuple[float, int, int, int]:
    """Higher silhouette first; ties: fewer clusters, then kmeans, agglomerative, dbscan."""
    sil = -round(c.silhouette, TIE_DECIMALS) if not math.isnan(c.silhouette) else math.inf
    return (sil, c.n_clusters, ALGORITHM_ORDER[c.algorithm], index)


def elbow(wcss: dict[int, float]) -> int | None:
    """The k farthest from the chord joining the first and last points of the normalised
    WCSS curve (the "kneedle" rule); None with fewer than 3 values of k."""
    ks = sorted(wcss)
    if len(ks) < 3:
        return None
    x = np.array(ks, dtype=float)
    y = np.array([wcss[k] for k in ks])
    x = (x - x[0]) / (x[-1] - x[0])
    span = y[0] - y[-1]
    if span <= 0:
        return None
    y = (y[0] - y) / span  # rising from 0 to 1
    return int(ks[int(np.argmax(y - x))])


def run_search(X: np.ndarray, cfg: SearchConfig, progress: Progress | None = None) -> SearchResult:
    """Fit, score and rank every candidate; raise SearchError when none is eligible.

    Up to ``cfg.exact_max_rows`` rows every candidate sees every row. Above, candidates are
    fitted and scored on a seeded sample of ``cfg.sample_size`` rows and every row is then
    assigned with the winner's rule (see ``apg.clusters``).
    """
    say = progress or (lambda _msg: None)
    plan = sample_plan(len(X), cfg)
    if plan is None:
        return _search(X, cfg, say)
    result = search_sample(X[plan.fitted], cfg, say, len(X))
    start = time.perf_counter()
    labels = result.model.predict(X)
    labels[plan.fitted] = result.labels  # fitted rows keep the labels that were scored
    finish_sample(result, plan, labels, X[plan.check], start)
    return result


@dataclass(frozen=True)
class SamplePlan:
    """Sample mode's rows: those the candidates are fitted on, and a fresh sample (other
    seed, same size) on which the silhouette of everyone's final labels is measured."""

    fitted: np.ndarray
    check: np.ndarray


def sample_plan(n: int, cfg: SearchConfig) -> SamplePlan | None:
    """The sample-mode rows for ``n`` rows, or None when every candidate sees every row."""
    if n <= cfg.exact_max_rows or n <= cfg.sample_size:
        return None
    return SamplePlan(
        fitted=sample_rows(n, cfg.sample_size, cfg.seed),
        check=sample_rows(n, cfg.sample_size, cfg.seed + 1),
    )


def sample_rows(n: int, cap: int, seed: int) -> np.ndarray:
    """Sorted indices of a seeded sample of ``cap`` of ``n`` rows (all rows when n <= cap)."""
    if n <= cap:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, cap, replace=False))


def search_sample(X: np.ndarray, cfg: SearchConfig, say: Progress, n: int) -> SearchResult:
    """The search on the fitted sample ``X`` of ``n`` rows; the caller assigns every row."""
    say(
        f"search: {n:,} rows > exact_max_rows={cfg.exact_max_rows:,}; fitting on a sample "
        f"of {cfg.sample_size:,}"
    )
    result = _search(X, cfg, say)
    say(f"assign: {n:,} rows to {result.winner.n_clusters} clusters")
    return result


def finish_sample(
    result: SearchResult, plan: SamplePlan, labels: np.ndarray, X_check: np.ndarray, start: float
) -> None:
    """Give a sample-mode ``result`` everyone's ``labels`` and the silhouette on the check
    rows (``X_check`` is X at ``plan.check``); ``start`` is when assignment began."""
    assigned = silhouette_many(X_check, [labels[plan.check]])[0]
    result.labels = labels
    result.mode = "sample"
    result.sample_indices = plan.fitted
    result.assigned_silhouette = float(assigned)
    result.assign_seconds = time.perf_counter() - start


@contextmanager
def _tree_builder(X: np.ndarray, cfg: SearchConfig) -> Iterator[TreeJobs | None]:
    """Build the hierarchical trees in worker processes while this one fits K-Means and
    DBSCAN. fastcluster holds the GIL, so a thread would not overlap; below
    ``PARALLEL_TREES_MIN_ROWS`` starting processes costs more than it saves. Each worker
    holds one condensed matrix at a time (1.6 GB at n=20,000)."""
    if (
        cfg.agglomerative is None
        or not _tree_ks(X, cfg)
        or len(X) < PARALLEL_TREES_MIN_ROWS
        or _workers() < 2
    ):
        yield None
        return
    linkages = list(cfg.agglomerative.linkage)
    job = TreeJobs(X, linkages, processes=min(TREE_PROCESSES, len(linkages)))
    try:
        yield job
    finally:
        job.close()


def _fit_local(
    X: np.ndarray, cfg: SearchConfig, say: Progress, trees: dict[str, np.ndarray]
) -> tuple[list[Candidate], list[Candidate]]:
    """Every candidate in grid order, and those already scored while trees were built."""
    kmeans: list[Candidate] = []
    agglomerative: list[Candidate] = []
    dbscan: list[Candidate] = []
    scored: list[Candidate] = []
    with _tree_builder(X, cfg) as pending:
        if cfg.kmeans is not None:
            kmeans = _kmeans(X, cfg, say)
        if cfg.dbscan is not None:
            dbscan = _dbscan(X, cfg, say)
        if pending is not None:
            assert cfg.agglomerative is not None
            # The trees are bound by memory latency: scoring next to two tree workers slowed
            # them by half (measured). So candidates wait until a core is free (a worker has
            # finished, or there are fewer workers than cores) and are then scored together.
            waiting = [*kmeans, *dbscan]
            by_linkage: dict[str, list[Candidate]] = {}
            batches = pending.as_completed()
            while True:
                if waiting and (pending.busy < _workers() or not pending.busy):
                    say(f"search: scoring {len(waiting)} candidates")
                    _score(X, waiting, cfg, threads=max(1, _workers() - pending.busy))
                    scored += waiting
                    waiting = []
                batch = next(batches, None)
                if batch is None:
                    break
                for method, Z, seconds in batch:
                    trees[method] = Z
                    by_linkage[method] = _cuts(X, cfg, say, method, Z, seconds)
                    waiting += by_linkage[method]
            agglomerative = [c for m in cfg.agglomerative.linkage for c in by_linkage[m]]
        elif cfg.agglomerative is not None:
            agglomerative = _agglomerative(X, cfg, say, trees)
    return [*kmeans, *agglomerative, *dbscan], scored


def _search(X: np.ndarray, cfg: SearchConfig, say: Progress) -> SearchResult:
    trees: dict[str, np.ndarray] = {}
    with warnings.catch_warnings():
        # KMeans warns when it finds fewer distinct clusters than asked (duplicate points);
        # the candidate's cluster count already records that.
        warnings.simplefilter("ignore", category=UserWarning)
        if cfg.backend == "dask":
            from apg.scaleout import fit_candidates_dask

            candidates, scored = fit_candidates_dask(X, cfg, say, trees), []
        else:
            candidates, scored = _fit_local(X, cfg, say, trees)
    if not candidates:
        raise SearchError(f"no candidate could be fitted on {len(X)} rows; lower the k ranges")
    unscored = [c for c in candidates if not any(c is s for s in scored)]
    if unscored:
        say(f"search: scoring {len(unscored)} candidates")
        _score(X, unscored, cfg)
    wcss = {
        c.params["k"]: c.inertia
        for c in candidates
        if c.algorithm == "kmeans" and c.inertia is not None
    }
    ranked = sorted(range(len(candidates)), key=lambda i: rank_key(candidates[i], i))
    eligible = [i for i in ranked if candidates[i].eligible]
    if not eligible:
        best = [candidates[i] for i in ranked[:5]]
        lines = "\n".join(
            f"  {c.key}: silhouette {c.silhouette:.3f}, rejected: {c.reason}" for c in best
        )
        raise SearchError(
            f"none of the {len(candidates)} candidates meets the selection rules. Best few:\n"
            f"{lines}\nRelax search.min_cluster_share, search.max_noise_share or "
            "search.max_clusters, or check the features"
        )
    winner = candidates[eligible[0]]
    winner.selected = True
    eps = winner.params.get("eps")
    model = ClusterModel.from_fit(
        winner.algorithm,
        X,
        winner.labels,
        centers=winner.centers,
        core_indices=winner.core_indices,
        eps=eps,
    )
    return SearchResult(
        candidates=candidates,
        winner=winner,
        elbow_k=elbow(wcss),
        wcss=wcss,
        labels=winner.labels,
        model=model,
        linkage_trees=trees,
    )
