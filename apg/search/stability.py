"""Stability under resampling: does a candidate's clustering come back on another sample?

For each of ``resamples`` seeded subsamples (``fraction`` of the rows, at most ``max_rows``)
every contender is refitted with its own parameters on the subsample alone and compared with
the full fit on the users both contain:

* ``stability``: the mean adjusted Rand index (DBSCAN noise is a label of its own, so noise
  that turns into a cluster counts as disagreement);
* ``cluster_stability``: per full-fit cluster, the mean over resamples of the Jaccard
  similarity with its best-matching subsample cluster: Hennig's clusterwise stability
  (clusterboot): >= 0.75 a stable cluster, < 0.5 a dissolved one.

Work is shared within a resample the way the search shares it: one tree per linkage cut at
every k, one neighbour pass for every DBSCAN setting. Above ``max_rows / fraction`` rows the
subsamples are ``max_rows`` users drawn from all (m-out-of-n), which keeps the cost flat.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits

from apg.config import SearchConfig, StabilityConfig
from apg.search import kernels
from apg.search.candidates import Candidate
from apg.search.neighbors import DbscanNeighbors


@dataclass
class Stability:
    ari: float  # mean over resamples
    clusters: dict[int, float]  # full-fit cluster -> mean best-match Jaccard


def subsample_size(n: int, cfg: StabilityConfig) -> int:
    return max(2, min(round(cfg.fraction * n), cfg.max_rows, n))


def resample_rows(n: int, cfg: StabilityConfig, seed: int) -> list[np.ndarray]:
    """The sorted row positions of each subsample, seeded."""
    rng = np.random.default_rng([seed, 0x5AB1E])
    m = subsample_size(n, cfg)
    return [np.sort(rng.choice(n, m, replace=False)) for _ in range(cfg.resamples)]


def jaccard_best_match(full: np.ndarray, sub: np.ndarray) -> dict[int, float]:
    """Per cluster of ``full`` (noise, < 0, excluded): the highest Jaccard similarity with a
    cluster of ``sub`` on the same rows (0 when all its rows became noise)."""
    out: dict[int, float] = {}
    sub_clusters = [c for c in np.unique(sub) if c >= 0]
    sub_sizes = {c: int(np.count_nonzero(sub == c)) for c in sub_clusters}
    for c in np.unique(full):
        if c < 0:
            continue
        members = full == c
        size = int(np.count_nonzero(members))
        best = 0.0
        overlap = sub[members]
        for s in np.unique(overlap):
            if s < 0:
                continue
            both = int(np.count_nonzero(overlap == s))
            best = max(best, both / (size + sub_sizes[int(s)] - both))
        out[int(c)] = best
    return out


def refit(
    Xs: np.ndarray, contenders: Sequence[Candidate], cfg: SearchConfig, seed: int
) -> list[np.ndarray]:
    """Each contender's labels from a fit on ``Xs`` alone, with its own parameters."""
    out: list[np.ndarray | None] = [None] * len(contenders)
    trees: dict[str, np.ndarray] = {}
    trees_of = [c for c in contenders if c.algorithm == "agglomerative"]
    linkages = sorted({str(c.params["linkage"]) for c in trees_of})
    if linkages:
        trees = kernels.linkage_matrices(Xs, linkages)
    dbscan = [c for c in contenders if c.algorithm == "dbscan"]
    neighbours = (
        DbscanNeighbors(Xs, sorted({float(c.params["eps"]) for c in dbscan})) if dbscan else None
    )
    cuts: dict[str, dict[int, np.ndarray]] = {}
    for linkage in linkages:
        ks = sorted({int(c.params["k"]) for c in contenders if c.params.get("linkage") == linkage})
        cuts[linkage] = kernels.labels_from_linkage(trees[linkage], [k for k in ks if k < len(Xs)])
    for i, c in enumerate(contenders):
        if c.algorithm == "kmeans":
            n_init = cfg.kmeans.n_init if cfg.kmeans is not None else 10
            with threadpool_limits(limits=1, user_api="openmp"):
                model = KMeans(n_clusters=int(c.params["k"]), n_init=n_init, random_state=seed)
                out[i] = model.fit(Xs).labels_.astype(np.intp)
        elif c.algorithm == "agglomerative":
            out[i] = cuts[str(c.params["linkage"])][int(c.params["k"])]
        else:
            assert neighbours is not None
            out[i] = neighbours.fit(float(c.params["eps"]), int(c.params["min_samples"]))[0]
    return [labels for labels in out if labels is not None]


def measure(X: np.ndarray, contenders: Sequence[Candidate], cfg: SearchConfig) -> list[Stability]:
    """The stability of each contender (in order), from ``cfg.stability.resamples`` refits."""
    stab = cfg.stability
    assert stab is not None
    aris: list[list[float]] = [[] for _ in contenders]
    jaccards: list[dict[int, list[float]]] = [{} for _ in contenders]
    for b, rows in enumerate(resample_rows(len(X), stab, cfg.seed)):
        refitted = refit(X[rows], contenders, cfg, seed=cfg.seed + 1 + b)
        for i, (c, sub) in enumerate(zip(contenders, refitted, strict=True)):
            full = c.labels[rows]
            aris[i].append(float(adjusted_rand_score(full, sub)))
            for cluster, j in jaccard_best_match(full, sub).items():
                jaccards[i].setdefault(cluster, []).append(j)
    return [
        Stability(
            ari=float(np.mean(a)),
            clusters={c: float(np.mean(v)) for c, v in sorted(j.items())},
        )
        for a, j in zip(aris, jaccards, strict=True)
    ]
