"""Placing every user with a DBSCAN winner's rule: the bounded kd-tree query against the
unbounded ``kneighbors`` it replaced, on the same data in the same process.

    python benchmarks/dbscan_assign.py                    # 1,000,000 users, 15 features
    python benchmarks/dbscan_assign.py --rows 200000 --features 30
    python benchmarks/dbscan_assign.py --table dense      # scale.py's DBSCAN-winning table

``users`` is the prepared sample users table (widened with noisy copies of its columns to
``--features``); ``dense`` is ``benchmarks/scale.py --table dense``, standardized. The winner
is fitted as in sample mode: DBSCAN on a 5,000-row sample at each eps of apg's
k-distance grid (min_samples 10); every user is then placed by both rules. Prints both times,
their ratio and whether the labels are identical, per eps; and a K-Means rule (nearest of 10
centres) for scale, since a DBSCAN winner should not cost much more than a K-Means one.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.cluster import DBSCAN, KMeans
from sklearn.neighbors import NearestNeighbors

from apg.search.clusters import CHUNK_ROWS, ClusterModel
from apg.search.core_rule import CoreRule
from apg.search.eps_grid import kdistance_eps_grid

sys.path.insert(0, str(Path(__file__).parent))
from search_vs_naive import matrix


def kneighbors_rule(cores: np.ndarray, labels: np.ndarray, eps: float, X: np.ndarray) -> np.ndarray:
    """The rule as it was: the nearest core by an unbounded query, then the eps test."""
    out = np.full(len(X), -1, dtype=np.intp)
    if not len(cores):
        return out
    nn = NearestNeighbors(n_neighbors=1).fit(cores)
    for start in range(0, len(X), CHUNK_ROWS):
        dist, idx = nn.kneighbors(X[start : start + CHUNK_ROWS], n_neighbors=1)
        out[start : start + len(dist)] = np.where(dist[:, 0] <= eps, labels[idx[:, 0]], -1)
    return out


def dense(rows: int) -> np.ndarray:
    import tempfile

    import pandas as pd
    from scale import DENSE_COLUMNS, make_dense_table

    with tempfile.TemporaryDirectory() as tmp:
        make_dense_table(rows, Path(tmp) / "dense.parquet")
        X = pd.read_parquet(Path(tmp) / "dense.parquet")[DENSE_COLUMNS].to_numpy()
    return (X - X.mean(axis=0)) / X.std(axis=0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=15, help="users table: columns")
    ap.add_argument("--table", choices=["users", "dense"], default="users")
    args = ap.parse_args()
    X = dense(args.rows) if args.table == "dense" else matrix(args.rows, 0)
    if X.shape[1] < args.features:  # widen with noisy copies, as correlated real columns are
        rng = np.random.default_rng(1)
        extra = X[:, rng.integers(0, X.shape[1], args.features - X.shape[1])]
        X = np.hstack([X, extra + rng.normal(0, 0.3, extra.shape)])
    X = np.ascontiguousarray(X[:, : args.features])
    sample = X[np.sort(np.random.default_rng(0).choice(len(X), 5000, replace=False))]
    print(f"data: {X.shape[0]:,} rows x {X.shape[1]} columns; fitted on 5,000")
    t0 = time.perf_counter()
    km = KMeans(n_clusters=10, n_init=1, random_state=0).fit(sample)
    ClusterModel.from_fit("kmeans", sample, km.labels_, centers=km.cluster_centers_).predict(X)
    t_km = time.perf_counter() - t0
    print(f"k-means rule (k=10): {t_km:.2f} s")
    print(
        f"{'eps':>8} {'cores':>6} {'noise':>6} {'kneighbors s':>13} {'bounded s':>10} "
        f"{'speed-up':>9} {'vs k-means':>11}  identical"
    )
    for eps in kdistance_eps_grid(sample, [10], [0.5, 0.75, 0.9, 0.95])[10]:
        fit = DBSCAN(eps=eps, min_samples=10).fit(sample)
        cores, labels = sample[fit.core_sample_indices_], fit.labels_[fit.core_sample_indices_]
        t0 = time.perf_counter()
        old = kneighbors_rule(cores, labels, eps, X)
        t_old = time.perf_counter() - t0
        t0 = time.perf_counter()
        new = CoreRule(cores, labels, eps).predict(X)
        t_new = time.perf_counter() - t0
        print(
            f"{eps:>8.4g} {len(cores):>6} {np.mean(new < 0):>6.1%} {t_old:>13.2f} "
            f"{t_new:>10.2f} {t_old / t_new:>8.1f}x {t_new / t_km:>10.2f}x  "
            f"{np.array_equal(old, new)}"
        )


if __name__ == "__main__":
    main()
