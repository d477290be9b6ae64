"""How the selection settings choose, measured on real tables and data with known structure.

    python benchmarks/selection.py                       # the default settings
    python benchmarks/selection.py --tolerance 0.01 0.02 0.05 0.1
    python benchmarks/selection.py --rule silhouette     # the bare-silhouette rule

For each setting and table it prints the winner, its persona sizes, silhouette and stability,
and how far the answer can be trusted: on tables with planted structure the ARI with the truth;
on every table the ARI between fits on two seeded 80% samples of the users (on the users both
contain), which is the check a persona team makes before it keeps a persona set. The real
tables come from ../shared/data (skipped when absent); nothing is copied into the repo.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from apg.config import parse_config
from apg.pipeline import run
from apg.sources.sample import ATTITUDINAL, BEHAVIORAL, generate_users

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

REAL = {
    "mall": ("Mall_Customers.csv", ",", ["Annual Income (k$)", "Spending Score (1-100)"]),
    "wholesale": (
        "wholesale_customers.csv",
        ",",
        ["Fresh", "Milk", "Grocery", "Frozen", "Detergents_Paper", "Delicassen"],
    ),
    "marketing": (
        "marketing_campaign.csv",
        "\t",
        [
            "Recency", "MntWines", "MntFruits", "MntMeatProducts", "MntFishProducts",
            "MntSweetProducts", "MntGoldProds", "NumDealsPurchases", "NumWebPurchases",
            "NumCatalogPurchases", "NumStorePurchases", "NumWebVisitsMonth",
        ],
    ),
}  # fmt: skip


def tables() -> dict[str, tuple[pd.DataFrame, list[str], np.ndarray | None]]:
    """name -> (frame with a `uid` column, clustering columns, planted truth or None)."""
    out: dict[str, tuple[pd.DataFrame, list[str], np.ndarray | None]] = {}
    for name, (file, sep, cols) in REAL.items():
        if (SHARED / file).exists():
            frame = pd.read_csv(SHARED / file, sep=sep)
            frame.insert(0, "uid", [f"u{i}" for i in range(len(frame))])
            out[name] = (frame, cols, None)
    users = generate_users(3000, seed=0, with_segment=True)
    truth = pd.factorize(users.pop("segment"))[0]
    users = users.rename(columns={"user_id": "uid"})
    out["sample (5 planted)"] = (users, [*BEHAVIORAL, *ATTITUDINAL], truth)
    for k, std, sizes in ((2, 1.5, None), (4, 1.2, None), (6, 1.0, [600, 400, 300, 200, 150, 100])):
        X, y = make_blobs(
            n_samples=sizes or 1500, centers=None if sizes else k, n_features=5,
            cluster_std=std, random_state=k,
        )  # fmt: skip
        frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(5)])
        frame.insert(0, "uid", [f"b{i}" for i in range(len(frame))])
        out[f"blobs k={k}"] = (frame, [f"x{i}" for i in range(5)], y)
    rng = np.random.default_rng(0)
    noise = pd.DataFrame(rng.uniform(size=(1500, 5)), columns=[f"x{i}" for i in range(5)])
    noise.insert(0, "uid", [f"n{i}" for i in range(1500)])
    out["uniform noise"] = (noise, [f"x{i}" for i in range(5)], None)
    return out


PREPARE: dict[str, Any] = {"transform": "auto"}


def fit(frame: pd.DataFrame, cols: list[str], search: dict[str, Any], tmp: Path) -> Any:
    path = tmp / "t.parquet"
    frame.to_parquet(path, index=False)
    raw = {
        "sources": [{"kind": "file", "path": str(path)}],
        "id_column": "uid",
        "features": {"behavioral": cols},
        "preprocessing": PREPARE,
        "search": search,
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run(parse_config(raw, base_dir=tmp))


def two_samples_ari(
    frame: pd.DataFrame, cols: list[str], search: dict[str, Any], tmp: Path
) -> float:
    labels = []
    for seed in (1, 2):
        rows = np.sort(
            np.random.default_rng(seed).choice(len(frame), int(0.8 * len(frame)), replace=False)
        )
        r = fit(frame.iloc[rows], cols, search, tmp)
        labels.append(pd.Series(r.labels, index=r.frame.ids.to_numpy()))
    shared = labels[0].index.intersection(labels[1].index)
    return float(adjusted_rand_score(labels[0][shared], labels[1][shared]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tolerance", type=float, nargs="+", default=[None])
    parser.add_argument("--rule", choices=["stable", "silhouette"], default="stable")
    parser.add_argument("--only", nargs="*", help="table names to run")
    parser.add_argument("--skew", type=float, help="preprocessing.skew_threshold")
    parser.add_argument("--no-transform", action="store_true", help="preprocessing.transform: none")
    args = parser.parse_args()
    if args.skew is not None:
        PREPARE["skew_threshold"] = args.skew
    if args.no_transform:
        PREPARE["transform"] = "none"
    tmp = Path("/tmp/apg-selection-bench")
    tmp.mkdir(exist_ok=True)
    data = tables()
    print(f"{'setting':<18} {'table':<20} {'winner':<34} {'sizes':<34} sil   stab  truth 80%x2  s")
    for tol in args.tolerance:
        search: dict[str, Any] = {"selection": args.rule}
        if tol is not None:
            search["silhouette_tolerance"] = tol
        label = f"{args.rule}" + (f" tol={tol}" if tol is not None else "")
        for name, (frame, cols, truth) in data.items():
            if args.only and name not in args.only:
                continue
            start = time.perf_counter()
            r = fit(frame, cols, search, tmp)
            seconds = time.perf_counter() - start
            w = r.search.winner
            sizes = sorted(np.bincount(r.labels[r.labels >= 0]).tolist(), reverse=True)
            vs_truth = (
                f"{adjusted_rand_score(truth, r.labels):.2f}" if truth is not None else "  – "
            )
            stab = f"{w.stability:.2f}" if w.stability is not None else "  – "
            again = two_samples_ari(frame, cols, search, tmp)
            print(
                f"{label:<18} {name:<20} {w.key[:34]:<34} {str(sizes)[:34]:<34} "
                f"{w.silhouette:.3f} {stab}  {vs_truth}  {again:.2f}  {seconds:.1f}"
            )


if __name__ == "__main__":
    main()
