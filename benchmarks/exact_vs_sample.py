"""What ``search.exact_max_rows`` trades: an exact search on every row against sample mode
(fit on ``sample_size`` rows, then place everyone with the winner's rule), same table.

    python benchmarks/exact_vs_sample.py                  # 12k, 15k, 20k users
    python benchmarks/exact_vs_sample.py --rows 20000 --features 50
    python benchmarks/exact_vs_sample.py --rows 20000 --tree-memory-mib 4096   # two workers

Each search runs in a fresh process whose process tree (the search and its tree workers) is
sampled for peak memory. Prints per size and mode: search seconds, peak MiB, the winner, the
silhouette of everyone's final labels on the same seeded 5,000 rows, and the ARI between the
exact and the sample labels (1.0: the same personas).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from peak import run_sampled


def data(rows: int, features: int) -> np.ndarray:
    """The prepared sample users table, widened with noisy copies of its columns."""
    from search_vs_naive import matrix

    X = matrix(rows, 0)
    if features > X.shape[1]:
        rng = np.random.default_rng(1)
        extra = X[:, rng.integers(0, X.shape[1], features - X.shape[1])]
        X = np.hstack([X, extra + rng.normal(0, 0.3, extra.shape)])
    return np.ascontiguousarray(X[:, :features])


def child(rows: int, features: int, exact: bool, out: Path, tree_mib: int) -> None:
    from sklearn.metrics import silhouette_score

    from apg.search import trees_worker

    if tree_mib:  # the budget for condensed matrices (4096: two workers at 20,000, as before)
        trees_worker.TREE_MEMORY_BYTES = tree_mib * 2**20

    from apg.config import SearchConfig
    from apg.search.leaderboard import run_search, sample_rows

    X = data(rows, features)
    cfg = SearchConfig(exact_max_rows=rows if exact else min(rows - 1, 10_000))
    start = time.perf_counter()
    result = run_search(X, cfg)
    seconds = time.perf_counter() - start
    np.save(out, result.labels)
    check = sample_rows(rows, 5000, 1)
    keep = result.labels[check] >= 0
    sil = silhouette_score(X[check][keep], result.labels[check][keep])
    print(
        json.dumps(
            {"seconds": seconds, "winner": result.winner.key, "mode": result.mode, "sil": sil}
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[12_000, 15_000, 20_000])
    ap.add_argument("--features", type=int, default=17)
    ap.add_argument("--tree-memory-mib", type=int, default=0, help="override the tree budget")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        rows, features, exact, out = args.child
        child(int(rows), int(features), exact == "1", Path(out), args.tree_memory_mib)
        return
    from sklearn.metrics import adjusted_rand_score

    print(f"{'users':>7} {'mode':>6} {'search s':>9} {'peak MiB':>9} {'silhouette':>10}  winner")
    for rows in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            labels = {}
            for exact in (True, False):
                path = Path(tmp) / f"{int(exact)}.npy"
                cmd = [sys.executable, __file__, f"--tree-memory-mib={args.tree_memory_mib}"]
                cmd += ["--child", str(rows), str(args.features)]
                out, peak = run_sampled([*cmd, str(int(exact)), str(path)])
                r = json.loads(out.strip().splitlines()[-1])
                labels[exact] = np.load(path)
                print(
                    f"{rows:>7,} {r['mode']:>6} {r['seconds']:>9.1f} {peak:>9.0f} "
                    f"{r['sil']:>10.4f}  {r['winner']}"
                )
            ari = adjusted_rand_score(labels[True], labels[False])
            print(f"{rows:>7,} ARI exact vs sample labels: {ari:.3f}")


if __name__ == "__main__":
    main()
