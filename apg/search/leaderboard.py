"""The clustering search: every candidate on the grid, scored, with one winner.

Candidates share work: one tree per linkage cut at every k (``apg.search.kernels``, built in worker
processes by ``apg.search.trees_worker``), one bucketed pair pass for all DBSCAN settings
(``apg.search.neighbors``), and chunked passes that score many candidates' silhouettes at once
(``apg.search.silhouettes``). Labels and scores are those of scikit-learn, in the clustered space.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from apg.config import SearchConfig
from apg.errors import SearchError
from apg.prepare.matrix import Matrix, WholeMatrix
from apg.search.candidates import (
    Candidate,
    Progress,
    agglomerative_candidates,
    dbscan_grid,
    kmeans_candidates,
    tree_cuts,
    tree_ks,
    workers,
)
from apg.search.clusters import CHUNK_ROWS, ClusterModel
from apg.search.selection import (
    NoEligibleError,
    choose,
    elbow,
    failure_hints,
    rank_key,
    score_candidates,
    weak_reasons,
)
from apg.search.silhouettes import silhouette_many
from apg.search.trees_worker import TreeJobs, tree_processes

# From this many rows the hierarchical trees are built in a worker process (measured: below
# it, starting the process costs more than the overlap saves).
PARALLEL_TREES_MIN_ROWS = 4000
# Tree worker processes: two overlap the trees with each other and with K-Means and DBSCAN
# on a 2-core machine, when their two condensed matrices fit the memory budget
# (``trees_worker.TREE_MEMORY_BYTES``); above it one worker builds the trees in turn.
TREE_PROCESSES = 2


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
    # Share of rows the winner's rule places as the run labelled them (the stored model's).
    training_agreement: float | None = None
    # Why the structure is weak (README "Weak structure"); empty: it is not.
    weak: list[str] = field(default_factory=list)
    stability_seconds: float = 0.0  # choosing the winner, almost all of it the refits
    linkage_trees: dict[str, np.ndarray] = field(default_factory=dict, repr=False)


def run_search(X: np.ndarray, cfg: SearchConfig, progress: Progress | None = None) -> SearchResult:
    """Fit, score and rank every candidate on ``X`` and label every row (see
    :func:`search_matrix` and :func:`assign_everyone`)."""
    matrix = WholeMatrix(X)
    result = search_matrix(matrix, cfg, progress)
    assign_everyone(matrix, result, cfg)
    return result


def search_matrix(
    matrix: Matrix, cfg: SearchConfig, progress: Progress | None = None
) -> SearchResult:
    """Fit, score and rank every candidate; raise SearchError when none is eligible.

    Up to ``cfg.exact_max_rows`` rows every candidate sees every row, and the result labels
    them all. Above, candidates are fitted and scored on a seeded sample of
    ``cfg.sample_size`` rows; :func:`assign_everyone` then places every row with the winner's
    rule (see ``apg.search.clusters``).
    """
    say = progress or (lambda _msg: None)
    n = matrix.n
    plan = sample_plan(n, cfg)
    if plan is None:
        if not matrix.in_memory:
            say(f"search: reading {n:,} of {n:,} rows")
        X = matrix.all()
        result = _search(X, cfg, say)
        result.training_agreement = float(np.mean(result.model.predict(X) == result.labels))
        return result
    # The rows the search reads: the fitted sample, the check sample, the report's sample.
    needed = np.union1d(np.union1d(plan.fitted, plan.check), sample_rows(n, MAP_SAMPLE, cfg.seed))
    if not matrix.in_memory:
        say(f"search: reading {len(needed):,} of {n:,} rows")
    matrix.preload(needed)
    return search_sample(matrix.rows(plan.fitted), cfg, say, n)


# Rows placed at a time: two whole blocks of ClusterModel.predict, so every row meets the
# arithmetic it meets in a whole-matrix predict.
ASSIGN_BATCH_ROWS = 2 * CHUNK_ROWS


def assign_everyone(
    matrix: Matrix,
    result: SearchResult,
    cfg: SearchConfig,
    on_batch: Callable[[np.ndarray, np.ndarray], None] | None = None,
) -> None:
    """Sample mode: place every row with the winner's rule, a batch at a time; fitted rows
    keep the labels they were scored with. ``on_batch(X, labels)`` sees each placed batch
    (profiles sum the cluster centres in the same pass). Exact mode labelled everyone."""
    plan = sample_plan(matrix.n, cfg)
    if plan is None:
        return
    start = time.perf_counter()
    labels = np.empty(matrix.n, dtype=np.intp)
    agrees = np.ones(matrix.n, dtype=bool)  # the rule places the row as the run labels it
    fitted, scored = plan.fitted, result.labels
    lo = 0
    for X in matrix.batches(ASSIGN_BATCH_ROWS):
        placed = result.model.predict(X)
        hi = lo + len(placed)
        first, last = np.searchsorted(fitted, [lo, hi])
        at = fitted[first:last] - lo
        agrees[lo + at] = placed[at] == scored[first:last]
        placed[at] = scored[first:last]
        labels[lo:hi] = placed
        if on_batch is not None:
            on_batch(X, placed)
        lo = hi
    result.training_agreement = float(np.mean(agrees))
    finish_sample(result, plan, labels, matrix.rows(plan.check), start)


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


# Rows a report keeps for its charts (drawn by sample_rows with the search seed); the
# silhouette and tree charts use subsets of these. A streamed run reads these rows too.
MAP_SAMPLE = 5000


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
    holds one condensed matrix at a time (400 MB at n=10,000), and only as many workers run
    as their matrices fit ``TREE_MEMORY_BYTES``."""
    if (
        cfg.agglomerative is None
        or not tree_ks(X, cfg)
        or len(X) < PARALLEL_TREES_MIN_ROWS
        or workers() < 2
    ):
        yield None
        return
    linkages = list(cfg.agglomerative.linkage)
    job = TreeJobs(X, linkages, processes=tree_processes(len(X), len(linkages), TREE_PROCESSES))
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
            kmeans = kmeans_candidates(X, cfg, say)
        if cfg.dbscan is not None:
            dbscan = dbscan_grid(X, cfg, say)
        if pending is not None:
            assert cfg.agglomerative is not None
            # The trees are bound by memory latency: scoring next to two tree workers slowed
            # them by half (measured). So candidates wait until a core is free (a worker has
            # finished, or there are fewer workers than cores) and are then scored together.
            waiting = [*kmeans, *dbscan]
            by_linkage: dict[str, list[Candidate]] = {}
            batches = pending.as_completed()
            while True:
                if waiting and (pending.busy < workers() or not pending.busy):
                    say(f"search: scoring {len(waiting)} candidates")
                    score_candidates(X, waiting, cfg, threads=max(1, workers() - pending.busy))
                    scored += waiting
                    waiting = []
                batch = next(batches, None)
                if batch is None:
                    break
                for method, Z, seconds in batch:
                    trees[method] = Z
                    by_linkage[method] = tree_cuts(X, cfg, say, method, Z, seconds)
                    waiting += by_linkage[method]
            agglomerative = [c for m in cfg.agglomerative.linkage for c in by_linkage[m]]
        elif cfg.agglomerative is not None:
            agglomerative = agglomerative_candidates(X, cfg, say, trees)
    return [*kmeans, *agglomerative, *dbscan], scored


def _search(X: np.ndarray, cfg: SearchConfig, say: Progress) -> SearchResult:
    trees: dict[str, np.ndarray] = {}
    with warnings.catch_warnings():
        # KMeans warns when it finds fewer distinct clusters than asked (duplicate points);
        # the candidate's cluster count already records that.
        warnings.simplefilter("ignore", category=UserWarning)
        if cfg.backend == "dask":
            from apg.search.scaleout import fit_candidates_dask

            candidates, scored = fit_candidates_dask(X, cfg, say, trees), []
        else:
            candidates, scored = _fit_local(X, cfg, say, trees)
    if not candidates:
        raise SearchError(f"no candidate could be fitted on {len(X)} rows; lower the k ranges")
    unscored = [c for c in candidates if not any(c is s for s in scored)]
    if unscored:
        say(f"search: scoring {len(unscored)} candidates")
        score_candidates(X, unscored, cfg)
    wcss = {
        c.params["k"]: c.inertia
        for c in candidates
        if c.algorithm == "kmeans" and c.inertia is not None
    }
    started = time.perf_counter()
    winner = choose(X, candidates, cfg, say)
    choosing = time.perf_counter() - started
    if winner is None:
        ranked = sorted(range(len(candidates)), key=lambda i: rank_key(candidates[i], i))
        best = [candidates[i] for i in ranked[:5]]
        lines = "\n".join(
            f"  {c.key}: silhouette {c.silhouette:.3f}, rejected: {c.reason}" for c in best
        )
        hints = "\n".join(f"- {h}" for h in failure_hints(candidates, len(X), cfg))
        raise NoEligibleError(
            f"none of the {len(candidates)} candidates meets the selection rules. Best few:\n"
            f"{lines}\nWhat the leaderboard suggests:\n{hints}",
            candidates,
        )
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
        weak=weak_reasons(winner, cfg),
        stability_seconds=choosing,
        candidates=candidates,
        winner=winner,
        elbow_k=elbow(wcss),
        wcss=wcss,
        labels=winner.labels,
        model=model,
        linkage_trees=trees,
    )
