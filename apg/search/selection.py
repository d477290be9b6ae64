"""Scoring and choosing: each candidate's scores and eligibility, the ranking, the elbow."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score

from apg.config import SearchConfig
from apg.errors import SearchError
from apg.search.candidates import Candidate, Progress
from apg.search.silhouettes import silhouette_many
from apg.search.stability import measure

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
        c.min_cluster_size = int(sizes.min()) if len(sizes) else 0
        c.evenness = evenness(c)
    scored = [c for c in candidates if c.n_clusters >= 2]
    silhouettes = silhouette_many(X, [c.labels for c in scored], threads=threads)
    for c, s in zip(scored, silhouettes, strict=True):
        c.silhouette = float(s)
        c.choice_silhouette = float(s) * (1.0 - c.noise_share)
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
        if c.n_clusters >= 2 and c.min_cluster_size < cfg.min_cluster_size:
            reasons.append(
                f"smallest cluster {c.min_cluster_size} user(s) < "
                f"min_cluster_size={cfg.min_cluster_size}"
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


def evenness(c: Candidate) -> float:
    """How even the cluster sizes are: entropy of the size shares over log(k), 1 = equal."""
    sizes = np.bincount(c.labels[c.labels >= 0])
    sizes = sizes[sizes > 0]
    if len(sizes) < 2:
        return 0.0
    p = sizes / sizes.sum()
    return float(-(p * np.log(p)).sum() / math.log(len(sizes)))


def contenders(candidates: list[Candidate], cfg: SearchConfig) -> list[Candidate]:
    """The candidates that can win: every eligible one within ``silhouette_tolerance`` of the
    best choice silhouette, and the best eligible one of each algorithm."""
    eligible = [c for c in candidates if c.eligible]
    if not eligible:
        return []
    best = max(c.choice_silhouette for c in eligible)
    near = [c for c in eligible if c.choice_silhouette >= best - cfg.silhouette_tolerance]
    for algorithm in ALGORITHM_ORDER:
        own = [c for c in eligible if c.algorithm == algorithm]
        if own:
            top = max(own, key=lambda c: c.choice_silhouette)
            if all(top is not c for c in near):
                near.append(top)
    return near


def choose(
    X: np.ndarray, candidates: list[Candidate], cfg: SearchConfig, say: Progress
) -> Candidate | None:
    """The winner among eligible candidates (README "Selection rules"); None when none is.

    ``selection: silhouette``: the highest silhouette (ties: fewer clusters, then K-Means,
    agglomerative, DBSCAN). ``selection: stable``:

    1. contenders (:func:`contenders`) are refitted on subsamples; one whose stability is
       below ``min_stability`` is no longer eligible (unless every contender is: then the
       most stable one is kept and the run is weak);
    2. among the remaining, those within ``silhouette_tolerance`` of the best choice
       silhouette (DBSCAN's noise counted as 0) are near-ties;
    3. of those, the ones within ``stability_tolerance`` of the most stable;
    4. then a persona count inside ``preferred_personas``, more even sizes, the higher
       choice silhouette, and the silhouette ranking.
    """
    ranked = sorted(range(len(candidates)), key=lambda i: rank_key(candidates[i], i))
    eligible = [candidates[i] for i in ranked if candidates[i].eligible]
    if not eligible:
        return None
    if cfg.selection == "silhouette" or cfg.stability is None:
        return eligible[0]
    pool = contenders(candidates, cfg)
    say(f"search: stability of {len(pool)} contenders, {cfg.stability.resamples} resamples")
    for c, st in zip(pool, measure(X, pool, cfg), strict=True):
        c.stability, c.cluster_stability = st.ari, st.clusters
    return pick(pool, eligible, cfg)


def pick(pool: list[Candidate], ranking: list[Candidate], cfg: SearchConfig) -> Candidate:
    """Steps 1 (the eligibility part) to 4 of :func:`choose` for contenders whose stability
    is known; ``ranking`` is the silhouette ranking of the eligible candidates."""
    stable = [c for c in pool if (c.stability or 0.0) >= cfg.min_stability]
    for c in pool:
        if (c.stability or 0.0) < cfg.min_stability:
            c.eligible = False
            c.reason = (
                f"unstable: stability {c.stability or 0.0:.2f} < min_stability={cfg.min_stability}"
            )
    if not stable:
        keep = max(pool, key=lambda c: (c.stability or 0.0, c.choice_silhouette))
        keep.eligible, keep.reason = True, ""
        return keep
    best = max(c.choice_silhouette for c in stable)
    near = [c for c in stable if c.choice_silhouette >= best - cfg.silhouette_tolerance]
    most = max(c.stability or 0.0 for c in near)
    steady = [c for c in near if (c.stability or 0.0) >= most - cfg.stability_tolerance]
    lo, hi = cfg.preferred_personas
    position = {id(c): i for i, c in enumerate(ranking)}
    return min(
        steady,
        key=lambda c: (
            not lo <= c.n_clusters <= hi,
            -round(c.evenness, 2),
            -c.choice_silhouette,
            position.get(id(c), len(position)),
        ),
    )


def weak_reasons(winner: Candidate, cfg: SearchConfig) -> list[str]:
    """Why the chosen personas may not reflect real groups (empty: they do, as far as the
    silhouette and stability can tell)."""
    reasons = []
    if winner.choice_silhouette < cfg.weak_silhouette:
        reasons.append(
            f"silhouette {winner.choice_silhouette:.2f} < {cfg.weak_silhouette}: the users do "
            "not fall into clearly separated groups"
        )
    if winner.stability is not None and winner.stability < cfg.min_stability:
        reasons.append(
            f"stability {winner.stability:.2f} < {cfg.min_stability}: refitted on other "
            "samples of the users, the groups come out differently"
        )
    return reasons


class NoEligibleError(SearchError):
    """No candidate meets the rules; carries the leaderboard so it can still be written."""

    def __init__(self, message: str, candidates: list[Candidate]) -> None:
        super().__init__(message)
        self.candidates = candidates


def failure_hints(candidates: list[Candidate], n: int, cfg: SearchConfig) -> list[str]:
    """What to change, chosen from what the leaderboard shows. Never "allow smaller
    clusters": that is how a run ends with 99% of users in one persona."""
    hints = []
    scored = [c for c in candidates if c.n_clusters >= 2]
    tiny = [c for c in scored if c.min_cluster_share * n <= 2 or c.min_cluster_share < 0.01]
    if scored and len(tiny) >= len(scored) / 2:
        hints.append(
            f"outliers dominate: {len(tiny)} of {len(scored)} candidates split off clusters of "
            "one or two users (or under 1%). Pull in heavy tails before scaling "
            "(preprocessing.transform: auto, or preprocessing.transforms: {column: winsorize}), "
            "or remove those users"
        )
    sils = [c.choice_silhouette for c in scored if not math.isnan(c.choice_silhouette)]
    if sils and max(sils) < cfg.weak_silhouette:
        hints.append(
            f"no structure: the best silhouette is {max(sils):.2f} (< {cfg.weak_silhouette}); "
            "these features do not separate groups of users. Try fewer or other features"
        )
    noisy = [c for c in candidates if c.algorithm == "dbscan"]
    if noisy and all(c.noise_share > cfg.max_noise_share for c in noisy):
        hints.append(
            "DBSCAN leaves more than search.max_noise_share as noise at every setting; its "
            "density grid does not fit these data (search.dbscan: null drops it)"
        )
    if not hints:
        hints.append(
            "check the features: the candidates break the rules in different ways (see "
            "candidates.csv and report.md for every rejection reason)"
        )
    return hints
