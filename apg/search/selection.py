"""Scoring and choosing: each candidate's scores and eligibility, the ranking, the elbow."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score

from apg.config import SearchConfig
from apg.search.candidates import Candidate
from apg.search.silhouettes import silhouette_many

ALGORITHM_ORDER = {"kmeans": 0, "agglomerative": 1, "dbscan": 2}


# Silhouettes equal to this many decimals are a tie (guards against float noise between
# algorithms that find the same partition).
TIE_DECIMALS = 12


def score_candidates(
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
