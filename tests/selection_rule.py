"""The README's selection rule recomputed from candidates.csv, independently of apg's code."""

from __future__ import annotations

import math

import pandas as pd

from apg.config import SearchConfig

ORDER = {"kmeans": 0, "agglomerative": 1, "dbscan": 2}


def base_eligible(c: pd.Series, cfg: SearchConfig) -> bool:
    """Eligible before stability: cluster count, noise and smallest-cluster rules."""
    return bool(
        2 <= c["n_clusters"] <= cfg.max_clusters
        and c["noise_share"] <= cfg.max_noise_share
        and c["min_cluster_share"] >= cfg.min_cluster_share
        and not math.isnan(c["silhouette"])
    )


def silhouette_order(board: pd.DataFrame) -> list[int]:
    ok = board.copy()
    ok["order"] = ok["algorithm"].map(ORDER)
    ok["sil"] = ok["silhouette"].round(12)
    ok["row"] = ok.index
    ok = ok.sort_values(["sil", "n_clusters", "order", "row"], ascending=[False, True, True, True])
    return [int(i) for i in ok.index]


def rule_winner(board: pd.DataFrame, cfg: SearchConfig) -> int:
    """The row of candidates.csv the rule picks (``board`` read with pandas)."""
    base = board[[base_eligible(c, cfg) for _, c in board.iterrows()]]
    order = silhouette_order(base)
    if cfg.selection == "silhouette":
        return order[0]
    measured = base[base["stability"].notna()]
    # The contenders: near-ties of the best choice silhouette, and each algorithm's best.
    best = base["choice_silhouette"].max()
    expected = set(base.index[base["choice_silhouette"] >= best - cfg.silhouette_tolerance])
    for _, group in base.groupby("algorithm"):
        expected.add(int(group["choice_silhouette"].idxmax()))
    assert set(measured.index) == expected, (sorted(measured.index), sorted(expected))
    stable = measured[measured["stability"] >= cfg.min_stability]
    if stable.empty:
        return int(measured.sort_values(["stability", "choice_silhouette"]).index[-1])
    top = stable["choice_silhouette"].max()
    near = stable[stable["choice_silhouette"] >= top - cfg.silhouette_tolerance]
    steady = near[near["stability"] >= near["stability"].max() - cfg.stability_tolerance]
    lo, hi = cfg.preferred_personas
    position = {row: i for i, row in enumerate(order)}
    return min(
        steady.index,
        key=lambda i: (
            not lo <= steady.loc[i, "n_clusters"] <= hi,
            -round(steady.loc[i, "evenness"], 2),
            -steady.loc[i, "choice_silhouette"],
            position[i],
        ),
    )


def expected_eligible(board: pd.DataFrame, cfg: SearchConfig, winner: int) -> list[bool]:
    """Per row: base rules, and at least min_stability where stability was measured (the
    winner stays eligible when every contender was unstable)."""
    out = []
    for i, c in board.iterrows():
        ok = base_eligible(c, cfg)
        if ok and cfg.selection == "stable" and not pd.isna(c["stability"]):
            ok = c["stability"] >= cfg.min_stability or i == winner
        out.append(ok)
    return out
