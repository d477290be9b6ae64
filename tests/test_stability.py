"""Stability under resampling and the selection rule built on it: against a direct
implementation with scikit-learn, on constructed leaderboards, and on data with known answers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.cluster import DBSCAN, AgglomerativeClustering, KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from apg.config import SearchConfig
from apg.search.candidates import Candidate
from apg.search.leaderboard import run_search
from apg.search.selection import contenders, evenness, pick
from apg.search.stability import jaccard_best_match, measure, resample_rows


def blobs(n: int = 400, k: int = 4, seed: int = 0, std: float = 1.0) -> tuple[np.ndarray, Any]:
    return make_blobs(n_samples=n, centers=k, n_features=3, cluster_std=std, random_state=seed)


def candidate(algorithm: str, params: dict[str, Any], labels: np.ndarray) -> Candidate:
    return Candidate(algorithm, params, np.asarray(labels, dtype=np.intp))


def direct_jaccards(full: np.ndarray, sub: np.ndarray) -> dict[int, float]:
    out = {}
    for c in set(full[full >= 0].tolist()):
        a = set(np.flatnonzero(full == c).tolist())
        scores = [
            len(a & b) / len(a | b)
            for s in set(sub[sub >= 0].tolist())
            if (b := set(np.flatnonzero(sub == s).tolist()))
        ]
        out[c] = max(scores, default=0.0)
    return out


def test_stability_equals_a_direct_refit_with_scikit_learn() -> None:
    X, _ = blobs(300, k=3, std=2.5)
    cfg = SearchConfig.model_validate({"seed": 3, "stability": {"resamples": 4, "fraction": 0.7}})
    km = KMeans(n_clusters=3, n_init=cfg.kmeans.n_init, random_state=cfg.seed).fit_predict(X)  # type: ignore[union-attr]
    ward = AgglomerativeClustering(n_clusters=4, linkage="ward").fit_predict(X)
    db = DBSCAN(eps=0.9, min_samples=5).fit_predict(X)
    pool = [
        candidate("kmeans", {"k": 3}, km),
        candidate("agglomerative", {"k": 4, "linkage": "ward"}, ward),
        candidate("dbscan", {"eps": 0.9, "min_samples": 5}, db),
    ]
    got = measure(X, pool, cfg)
    aris: list[list[float]] = [[], [], []]
    jacs: list[dict[int, list[float]]] = [{}, {}, {}]
    for b, rows in enumerate(resample_rows(len(X), cfg.stability, cfg.seed)):  # type: ignore[arg-type]
        Xs = X[rows]
        subs = [
            KMeans(n_clusters=3, n_init=cfg.kmeans.n_init, random_state=cfg.seed + 1 + b)  # type: ignore[union-attr]
            .fit(Xs)
            .labels_,
            AgglomerativeClustering(n_clusters=4, linkage="ward").fit_predict(Xs),
            DBSCAN(eps=0.9, min_samples=5).fit_predict(Xs),
        ]
        for i, (c, sub) in enumerate(zip(pool, subs, strict=True)):
            aris[i].append(adjusted_rand_score(c.labels[rows], sub))
            for cl, j in direct_jaccards(c.labels[rows], sub).items():
                jacs[i].setdefault(cl, []).append(j)
    for i, st in enumerate(got):
        assert st.ari == pytest.approx(np.mean(aris[i]), abs=1e-12)
        assert st.clusters == pytest.approx({c: np.mean(v) for c, v in jacs[i].items()})


def test_stability_resamples_are_seeded_and_capped() -> None:
    cfg = SearchConfig.model_validate({"stability": {"resamples": 3, "max_rows": 100}})
    first = resample_rows(1000, cfg.stability, 5)  # type: ignore[arg-type]
    assert [len(r) for r in first] == [100, 100, 100]
    again = resample_rows(1000, cfg.stability, 5)  # type: ignore[arg-type]
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[0], resample_rows(1000, cfg.stability, 6)[0])  # type: ignore[arg-type]


def test_stability_jaccard_counts_clusters_that_became_noise_as_zero() -> None:
    full = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    sub = np.array([5, 5, 7, -1, -1, -1, 7, 7])
    assert jaccard_best_match(full, sub) == {0: 2 / 3, 1: 0.0, 2: 2 / 3}


def board(specs: list[tuple[str, int, float, float | None, list[int]]]) -> list[Candidate]:
    """Candidates from (algorithm, k, choice silhouette, stability, sizes)."""
    out = []
    for algorithm, k, sil, stab, sizes in specs:
        labels = np.repeat(np.arange(len(sizes)), sizes)
        c = candidate(algorithm, {"k": k}, labels)
        c.n_clusters, c.silhouette, c.choice_silhouette = len(sizes), sil, sil
        c.stability, c.eligible = stab, True
        c.evenness = evenness(c)
        out.append(c)
    return out


CFG = SearchConfig()


def test_selection_near_tie_goes_to_the_more_stable() -> None:
    pool = board([("kmeans", 2, 0.300, 0.70, [60, 40]), ("kmeans", 3, 0.295, 0.95, [40, 30, 30])])
    assert pick(pool, pool, CFG) is pool[1]


def test_selection_a_clear_silhouette_lead_is_not_a_tie() -> None:
    pool = board([("kmeans", 2, 0.350, 0.90, [60, 40]), ("kmeans", 3, 0.300, 0.99, [40, 30, 30])])
    assert pick(pool, pool, CFG) is pool[0]


def test_selection_equally_stable_near_ties_prefer_the_persona_range_then_balance() -> None:
    pool = board(
        [
            ("kmeans", 2, 0.300, 0.97, [50, 50]),
            ("agglomerative", 4, 0.295, 0.95, [85, 5, 5, 5]),
            ("kmeans", 4, 0.290, 0.96, [25, 25, 25, 25]),
        ]
    )
    assert pick(pool, pool, CFG) is pool[2]
    assert evenness(pool[2]) == pytest.approx(1.0)
    assert evenness(pool[1]) < 0.5


def test_selection_unstable_contenders_lose_eligibility_with_the_reason() -> None:
    pool = board([("kmeans", 2, 0.40, 0.30, [90, 10]), ("kmeans", 3, 0.30, 0.90, [40, 30, 30])])
    assert pick(pool, pool, CFG) is pool[1]
    assert not pool[0].eligible
    assert pool[0].reason == "unstable: stability 0.30 < min_stability=0.6"


def test_selection_when_every_contender_is_unstable_the_most_stable_is_kept() -> None:
    pool = board([("kmeans", 2, 0.20, 0.30, [50, 50]), ("kmeans", 3, 0.18, 0.45, [40, 30, 30])])
    assert pick(pool, pool, CFG) is pool[1] and pool[1].eligible


CORNERS = np.array([[0, 0, 0], [10, 0, 0], [0, 10, 0], [0, 0, 10], [10, 10, 10]], dtype=float)


def test_selection_dbscan_noise_counts_against_it_when_choosing() -> None:
    X, truth = make_blobs(n_samples=600, centers=CORNERS[:4], cluster_std=1.2, random_state=2)
    grid = {"kmeans": {"k": [2, 6]}, "agglomerative": None, "dbscan": {"min_samples": [5]}}
    bare = run_search(X, SearchConfig.model_validate({**grid, "selection": "silhouette"}))
    stable = run_search(X, SearchConfig.model_validate(grid))
    assert bare.winner.algorithm == "dbscan" and bare.winner.noise_share > 0
    # DBSCAN's edges-as-noise answer wins on bare silhouette; counted, it does not.
    w = stable.winner
    assert w.key == "kmeans(k=4)"
    assert adjusted_rand_score(truth, stable.labels) > adjusted_rand_score(truth, bare.labels)
    d = bare.winner
    assert d.choice_silhouette == pytest.approx(d.silhouette * (1 - d.noise_share))


def test_selection_contenders_are_near_ties_and_each_algorithms_best() -> None:
    pool = board(
        [
            ("kmeans", 2, 0.40, None, [50, 50]),
            ("kmeans", 3, 0.39, None, [40, 30, 30]),
            ("kmeans", 4, 0.30, None, [25, 25, 25, 25]),
            ("agglomerative", 2, 0.20, None, [50, 50]),
        ]
    )
    assert contenders(pool, CFG) == [pool[0], pool[1], pool[3]]


def test_selection_planted_structure_wins_and_uniform_noise_is_unstable() -> None:
    X, truth = make_blobs(n_samples=800, centers=CORNERS, cluster_std=1.0, random_state=4)
    result = run_search(X, SearchConfig())
    assert result.winner.n_clusters == 5
    assert adjusted_rand_score(truth, result.labels) > 0.95
    assert result.winner.stability is not None and result.winner.stability > 0.9
    assert result.weak == []
    noise = np.random.default_rng(0).uniform(size=(800, 4))
    weak = run_search(noise, SearchConfig())
    # K-Means cuts uniform data the same way on every sample (stable), but nothing separates
    # the pieces: the silhouette says so.
    assert weak.winner.silhouette < 0.25
    assert weak.weak == [
        f"silhouette {weak.winner.choice_silhouette:.2f} < 0.25: the users do not fall into "
        "clearly separated groups"
    ]


def test_failure_hints_follow_what_the_leaderboard_shows() -> None:
    from apg.search.selection import NoEligibleError

    rng = np.random.default_rng(3)
    spiky = np.vstack([rng.normal(size=(300, 3)), [[80, 80, 80], [90, -70, 85], [-95, 90, 70]]])
    grid = {"kmeans": {"k": [2, 4]}, "agglomerative": None, "dbscan": None}
    with pytest.raises(NoEligibleError) as err:
        run_search(spiky, SearchConfig.model_validate({**grid, "min_cluster_share": 0.05}))
    text = str(err.value)
    assert "- outliers dominate: 3 of 3 candidates split off clusters of one or two users" in text
    assert "min_cluster_share" not in text.split("What the leaderboard suggests:")[1]
    assert len(err.value.candidates) == 3

    flat = rng.uniform(size=(400, 4))
    with pytest.raises(NoEligibleError) as err:
        run_search(flat, SearchConfig.model_validate({**grid, "min_cluster_share": 0.495}))
    assert "- no structure: the best silhouette is 0." in str(err.value)
