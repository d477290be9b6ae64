"""apg's search against the naive loop, on the same data in the same process.

The naive loop fits every candidate independently with scikit-learn and computes a full
``silhouette_score`` for each: what a notebook would do. apg shares work between candidates.

    python benchmarks/search_vs_naive.py --rows 5000
    python benchmarks/search_vs_naive.py --rows 20000 --skip-naive-above 0   # apg only

Prints both times, the ratio, whether the chosen model is the same, the ARI between the two
winners' labels and the largest silhouette difference over all candidates.
"""

from __future__ import annotations

import argparse
import math
import resource
import time
import warnings

import numpy as np
from sklearn.cluster import DBSCAN, AgglomerativeClustering, KMeans
from sklearn.metrics import adjusted_rand_score, silhouette_score

from apg.config import SearchConfig
from apg.prepare.features import select_features
from apg.prepare.preprocessing import prepare
from apg.search.candidates import Candidate
from apg.search.leaderboard import run_search
from apg.sources.sample import ATTITUDINAL, BEHAVIORAL, DEMOGRAPHIC, ID_COLUMN, generate_users


def peak_mib() -> float:
    """This process's peak or its largest child's (the tree workers), whichever is larger."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024


def matrix(rows: int, seed: int) -> np.ndarray:
    from apg.config import FeaturesConfig, PreprocessingConfig

    table = generate_users(rows, seed)
    features = FeaturesConfig(
        behavioral=list(BEHAVIORAL), attitudinal=list(ATTITUDINAL), demographic=list(DEMOGRAPHIC)
    )
    return prepare(select_features(table, ID_COLUMN, features), PreprocessingConfig()).X


def naive(X: np.ndarray, apg_candidates: list[Candidate], cfg: SearchConfig) -> dict[str, tuple]:
    """Fit and score each candidate from scratch; the DBSCAN eps grid is taken from apg's
    candidates so that both searches try exactly the same settings."""
    out: dict[str, tuple] = {}
    for c in apg_candidates:
        p = c.params
        if c.algorithm == "kmeans":
            assert cfg.kmeans is not None
            labels = (
                KMeans(n_clusters=p["k"], n_init=cfg.kmeans.n_init, random_state=cfg.seed)
                .fit(X)
                .labels_
            )
        elif c.algorithm == "agglomerative":
            labels = AgglomerativeClustering(n_clusters=p["k"], linkage=p["linkage"]).fit(X).labels_
        else:
            labels = DBSCAN(eps=p["eps"], min_samples=p["min_samples"]).fit(X).labels_
        keep = labels >= 0
        n_clusters = len(np.unique(labels[keep]))
        sil = (
            silhouette_score(X[keep], labels[keep])
            if n_clusters >= 2 and keep.sum() > n_clusters
            else math.nan
        )
        out[c.key] = (labels, float(sil))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--skip-naive-above",
        type=int,
        default=40_000,
        help="do not run the naive loop above this many rows (it takes hours)",
    )
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    X = matrix(args.rows, args.seed)
    # The naive loop is compared with the bare-silhouette rule (the search itself); the
    # default rule adds the stability refits, timed separately below.
    cfg = SearchConfig(seed=args.seed, exact_max_rows=max(args.rows, 100), selection="silhouette")
    print(f"data: {X.shape[0]:,} rows x {X.shape[1]} columns; grid: default")

    t0 = time.perf_counter()
    result = run_search(X, cfg)
    t_apg = time.perf_counter() - t0
    print(
        f"apg search:  {t_apg:8.2f} s  ({len(result.candidates)} candidates), "
        f"winner {result.winner.key}, silhouette {result.winner.silhouette:.6f}"
    )
    t0 = time.perf_counter()
    stable = run_search(X, cfg.model_copy(update={"selection": "stable"}))
    t_stable = time.perf_counter() - t0
    print(
        f"with stability (the default rule): {t_stable:8.2f} s = {t_stable / t_apg:.2f}x the "
        f"search alone; choosing {stable.stability_seconds:.2f} s "
        f"({stable.stability_seconds / t_stable:.0%}); winner {stable.winner.key}, "
        f"stability {stable.winner.stability:.3f}"
    )
    apg_peak = peak_mib()  # before the naive loop raises this process's own peak
    if args.rows > args.skip_naive_above:
        print(f"naive loop:  skipped (rows > {args.skip_naive_above})")
        print(f"peak memory: apg {apg_peak:.0f} MiB (largest of its processes)")
        return

    t0 = time.perf_counter()
    ref = naive(X, result.candidates, cfg)
    t_naive = time.perf_counter() - t0
    # The naive winner under the same rule: eligibility from apg's counts, which are
    # label-derived and checked equal below.
    best = None
    for i, c in enumerate(result.candidates):
        sil = ref[c.key][1]
        if c.eligible and not math.isnan(sil):
            key = (
                -round(sil, 12),
                c.n_clusters,
                ["kmeans", "agglomerative", "dbscan"].index(c.algorithm),
                i,
            )
            best = min(best, (key, c.key)) if best else (key, c.key)
    naive_winner = best[1] if best else None
    same_labels = all(np.array_equal(ref[c.key][0], c.labels) for c in result.candidates)
    diffs = [
        abs(ref[c.key][1] - c.silhouette)
        for c in result.candidates
        if not (math.isnan(ref[c.key][1]) and math.isnan(c.silhouette))
    ]
    ari = (
        adjusted_rand_score(ref[naive_winner][0], result.winner.labels)
        if naive_winner
        else math.nan
    )
    print(f"naive loop:  {t_naive:8.2f} s, winner {naive_winner}")
    print(f"speed-up:    {t_naive / t_apg:8.1f}x")
    print(
        f"same winner: {naive_winner == result.winner.key}; ARI {ari:.6f}; "
        f"identical labels for every candidate: {same_labels}"
    )
    print(f"max |silhouette difference|: {max(diffs) if diffs else math.nan:.2e}")
    print(
        f"peak memory: apg {apg_peak:.0f} MiB (largest of its processes); "
        f"naive loop {peak_mib():.0f} MiB"
    )


if __name__ == "__main__":
    main()
