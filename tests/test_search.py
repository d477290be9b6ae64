"""The clustering search: scores equal scikit-learn's, eligibility and the selection rule."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from selection_rule import expected_eligible, rule_winner
from sklearn.cluster import DBSCAN, AgglomerativeClustering, KMeans
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score
from threadpoolctl import threadpool_limits

from apg.config import FeaturesConfig, PreprocessingConfig, SearchConfig
from apg.errors import SearchError
from apg.prepare.features import select_features
from apg.prepare.preprocessing import prepare
from apg.search.candidates import Candidate
from apg.search.leaderboard import SearchResult, run_search
from apg.search.selection import contenders, elbow, rank_key, score_candidates
from apg.sources.sample import ATTITUDINAL, BEHAVIORAL

SMALL_GRID: dict[str, Any] = {
    "kmeans": {"k": [2, 4], "n_init": 2},
    "agglomerative": {"k": [2, 4], "linkage": ["ward", "average"]},
    "dbscan": {"min_samples": [5]},
}


def search_config(**changes: Any) -> SearchConfig:
    return SearchConfig.model_validate({**SMALL_GRID, **changes})


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    from apg.sources.sample import generate_users

    users = generate_users(400, seed=3)
    roles = FeaturesConfig(behavioral=list(BEHAVIORAL), attitudinal=list(ATTITUDINAL))
    return prepare(select_features(users, "user_id", roles), PreprocessingConfig()).X


@pytest.fixture(scope="module")
def result(X: np.ndarray) -> SearchResult:
    return run_search(X, search_config())


def blobs(
    sizes: list[int], centres: list[tuple[float, float]], spread: float = 0.3, seed: int = 0
) -> np.ndarray:
    rng = np.random.default_rng(seed)
    parts = [rng.normal(c, spread, size=(n, 2)) for n, c in zip(sizes, centres, strict=True)]
    return np.vstack(parts)


def leaderboard(candidates: list[Candidate]) -> pd.DataFrame:
    """The candidates as a plain table, as candidates.csv holds them."""
    return pd.DataFrame(
        [
            {
                "algorithm": c.algorithm,
                "params": json.dumps(c.params, sort_keys=True),
                "n_clusters": c.n_clusters,
                "noise_share": c.noise_share,
                "min_cluster_share": c.min_cluster_share,
                "silhouette": c.silhouette,
                "choice_silhouette": c.choice_silhouette,
                "stability": c.stability,
                "evenness": c.evenness,
                "eligible": c.eligible,
                "selected": c.selected,
            }
            for c in candidates
        ]
    )


# --------------------------------------------------------------------------- scores


def test_run_search_silhouette_equals_sklearn(X: np.ndarray, result: SearchResult) -> None:
    checked = 0
    for c in result.candidates:
        valid = c.labels >= 0
        if c.n_clusters < 2:
            assert math.isnan(c.silhouette)
            continue
        expected = silhouette_score(X[valid], c.labels[valid])
        assert c.silhouette == pytest.approx(expected, rel=1e-9, abs=1e-12), c.key
        checked += 1
    assert checked >= 6


def test_run_search_davies_bouldin_and_calinski_harabasz_equal_sklearn(
    X: np.ndarray, result: SearchResult
) -> None:
    for c in result.candidates:
        if c.n_clusters < 2:
            continue
        valid = c.labels >= 0
        assert c.davies_bouldin == pytest.approx(davies_bouldin_score(X[valid], c.labels[valid]))
        assert c.calinski_harabasz == pytest.approx(
            calinski_harabasz_score(X[valid], c.labels[valid])
        )


def test_run_search_kmeans_matches_sklearn_kmeans(X: np.ndarray, result: SearchResult) -> None:
    kmeans = [c for c in result.candidates if c.algorithm == "kmeans"]
    assert [c.params["k"] for c in kmeans] == [2, 3, 4]
    for c in kmeans:
        with threadpool_limits(1):
            model = KMeans(n_clusters=c.params["k"], n_init=2, random_state=0).fit(X)
        np.testing.assert_array_equal(c.labels, model.labels_)
        assert c.inertia == pytest.approx(model.inertia_)
    assert result.wcss == {c.params["k"]: c.inertia for c in kmeans}


def test_run_search_agglomerative_matches_sklearn(X: np.ndarray, result: SearchResult) -> None:
    agg = [c for c in result.candidates if c.algorithm == "agglomerative"]
    assert sorted((c.params["linkage"], c.params["k"]) for c in agg) == [
        ("average", 2),
        ("average", 3),
        ("average", 4),
        ("ward", 2),
        ("ward", 3),
        ("ward", 4),
    ]
    for c in agg:
        model = AgglomerativeClustering(n_clusters=c.params["k"], linkage=c.params["linkage"])
        np.testing.assert_array_equal(c.labels, model.fit_predict(X))
        assert c.inertia is None


def test_run_search_dbscan_matches_sklearn(X: np.ndarray, result: SearchResult) -> None:
    db = [c for c in result.candidates if c.algorithm == "dbscan"]
    assert db and all(c.params["min_samples"] == 5 for c in db)
    for c in db:
        model = DBSCAN(eps=c.params["eps"], min_samples=5).fit(X)
        np.testing.assert_array_equal(c.labels, model.labels_)


def test_run_search_counts_and_shares_come_from_labels(result: SearchResult) -> None:
    for c in result.candidates:
        s = pd.Series(c.labels)
        sizes = s[s >= 0].value_counts()
        assert c.n_clusters == len(sizes)
        assert c.noise_share == pytest.approx((s == -1).mean())
        expected_min = sizes.min() / len(s) if len(sizes) else 0.0
        assert c.min_cluster_share == pytest.approx(expected_min)
        assert c.seconds >= 0


def test_run_search_eligibility_follows_the_rules(result: SearchResult) -> None:
    cfg = search_config()
    board = leaderboard(result.candidates)
    winner = rule_winner(board, cfg)
    expected = expected_eligible(board, cfg, winner)
    for c, ok in zip(result.candidates, expected, strict=True):
        assert c.eligible == ok, c.key
        assert (c.reason == "") == ok


@pytest.mark.parametrize("rule", ["stable", "silhouette"])
def test_run_search_winner_follows_the_rule(X: np.ndarray, rule: str) -> None:
    cfg = search_config(selection=rule)
    result = run_search(X, cfg)
    board = leaderboard(result.candidates)
    expected = rule_winner(board, cfg)
    assert result.winner is result.candidates[expected]
    assert board["selected"].sum() == 1 and bool(board.loc[expected, "selected"])
    measured = board["stability"].notna().sum()
    assert measured >= 2 if rule == "stable" else measured == 0


def test_run_search_is_deterministic_for_a_seed(X: np.ndarray, result: SearchResult) -> None:
    again = run_search(X, search_config())
    assert [c.key for c in again.candidates] == [c.key for c in result.candidates]
    for a, b in zip(again.candidates, result.candidates, strict=True):
        np.testing.assert_array_equal(a.labels, b.labels)
        assert a.silhouette == b.silhouette or (
            math.isnan(a.silhouette) and math.isnan(b.silhouette)
        )
    assert again.winner.key == result.winner.key


def test_run_search_reports_progress(X: np.ndarray) -> None:
    said: list[str] = []
    cfg = search_config(dbscan=None, agglomerative={"k": [2, 3], "linkage": ["ward"]})
    result = run_search(X, cfg, said.append)
    assert said and all(line.startswith("search: ") for line in said)
    assert any("kmeans" in line for line in said)
    assert "search: agglomerative linkage=ward, k=2..3" in said
    assert said[-2:] == [
        "search: scoring 5 candidates",
        f"search: stability of {len(contenders(result.candidates, cfg))} contenders, 10 resamples",
    ]


# --------------------------------------------------------------------------- DBSCAN noise


def test_run_search_dbscan_noise_is_excluded_from_silhouette_and_clusters() -> None:
    rng = np.random.default_rng(4)
    X = np.vstack(
        [blobs([60, 60, 60], [(0, 0), (6, 0), (0, 6)], seed=4), rng.uniform(-3, 9, size=(12, 2))]
    )
    cfg = SearchConfig.model_validate(
        {
            "kmeans": None,
            "agglomerative": None,
            "dbscan": {"eps": [0.5], "min_samples": [5]},
            "max_noise_share": 0.5,
        }
    )
    (c,) = run_search(X, cfg).candidates
    labels = DBSCAN(eps=0.5, min_samples=5).fit(X).labels_
    noise = labels == -1
    assert noise.any()
    assert c.n_clusters == len(set(labels[~noise])) == 3
    assert c.noise_share == pytest.approx(noise.mean())
    assert c.silhouette == pytest.approx(silhouette_score(X[~noise], labels[~noise]))
    # Counting noise as a cluster would give another number: the check above can fail.
    assert c.silhouette != pytest.approx(silhouette_score(X, labels))


def test_run_search_too_much_noise_is_not_eligible() -> None:
    rng = np.random.default_rng(5)
    X = np.vstack([blobs([50, 50], [(0, 0), (8, 0)], seed=5), rng.uniform(-4, 12, (30, 2))])
    cfg = SearchConfig.model_validate(
        {
            "kmeans": {"k": [2, 2], "n_init": 1},
            "agglomerative": None,
            "dbscan": {"eps": [0.4], "min_samples": [5]},
            "max_noise_share": 0.1,
        }
    )
    res = run_search(X, cfg)
    db = next(c for c in res.candidates if c.algorithm == "dbscan")
    labels = DBSCAN(eps=0.4, min_samples=5).fit(X).labels_
    share = float((labels == -1).mean())
    assert share > 0.1
    assert not db.eligible
    assert db.reason == f"noise {share:.1%} > max_noise_share=10.0%"
    assert res.winner.algorithm == "kmeans"


# --------------------------------------------------------------------------- selection rule


def test_run_search_tie_prefers_kmeans_then_agglomerative_then_dbscan() -> None:
    X = blobs([40, 40], [(0, 0), (20, 0)], spread=0.5, seed=1)
    grid: dict[str, Any] = {
        "kmeans": {"k": [2, 2], "n_init": 1},
        "agglomerative": {"k": [2, 2], "linkage": ["ward"]},
        "dbscan": {"eps": [3.0], "min_samples": [3]},
    }
    res = run_search(X, SearchConfig.model_validate(grid))
    sils = {c.algorithm: c.silhouette for c in res.candidates}
    assert sils["kmeans"] == pytest.approx(sils["agglomerative"]) == pytest.approx(sils["dbscan"])
    assert res.winner.algorithm == "kmeans"
    res = run_search(X, SearchConfig.model_validate({**grid, "kmeans": None}))
    assert res.winner.algorithm == "agglomerative"
    res = run_search(
        X, SearchConfig.model_validate({**grid, "kmeans": None, "agglomerative": None})
    )
    assert res.winner.algorithm == "dbscan"


def _cand(algorithm: str, n: int, sil: float) -> Candidate:
    return Candidate(algorithm, {"k": n}, np.zeros(3, dtype=np.intp), n_clusters=n, silhouette=sil)


def test_rank_key_orders_by_silhouette_then_clusters_then_algorithm() -> None:
    cands = [
        _cand("dbscan", 3, 0.5),
        _cand("agglomerative", 3, 0.5),
        _cand("kmeans", 4, 0.5),
        _cand("kmeans", 3, 0.5),
        _cand("kmeans", 2, 0.4),
        _cand("dbscan", 2, 0.6),
        _cand("kmeans", 2, math.nan),
    ]
    order = sorted(range(len(cands)), key=lambda i: rank_key(cands[i], i))
    assert order == [5, 3, 1, 0, 2, 4, 6]


def test_rank_key_treats_float_noise_as_a_tie() -> None:
    a = _cand("agglomerative", 3, 0.3)
    b = _cand("kmeans", 3, 0.3 + 1e-15)
    assert sorted([0, 1], key=lambda i: rank_key([a, b][i], i)) == [1, 0]


def test_run_search_max_clusters_makes_more_clusters_ineligible(X: np.ndarray) -> None:
    # K-Means and trees cannot ask for k above max_clusters (a config error); DBSCAN can still
    # find more clusters, and such a labelling is not eligible.
    cfg = SearchConfig.model_validate(
        {"kmeans": {"k": [2, 3]}, "agglomerative": None, "max_clusters": 3, "min_cluster_share": 0}
    )
    labels = [np.arange(len(X)) % k for k in (2, 3, 5)]
    cands = [
        Candidate("dbscan", {"eps": float(k)}, lab.astype(np.intp))
        for k, lab in zip((2, 3, 5), labels, strict=True)
    ]
    score_candidates(X, cands, cfg)
    assert [c.eligible for c in cands] == [True, True, False]
    assert cands[2].reason == "5 clusters > max_clusters=3"


def test_run_search_none_eligible_lists_best_few_and_why() -> None:
    X = blobs([90, 6, 4], [(0, 0), (20, 0), (0, 20)], seed=2)
    cfg = SearchConfig.model_validate(
        {
            "kmeans": {"k": [2, 3], "n_init": 3},
            "agglomerative": None,
            "dbscan": None,
            "min_cluster_share": 0.1,
        }
    )
    rows = []
    for k in (2, 3):
        with threadpool_limits(1):
            labels = KMeans(n_clusters=k, n_init=3, random_state=0).fit(X).labels_
        size = int(np.bincount(labels).min())
        rows.append((silhouette_score(X, labels), k, size))
    rows.sort(key=lambda r: -r[0])
    lines = "\n".join(
        f"  kmeans(k={k}): silhouette {sil:.3f}, rejected: smallest cluster {size / len(X):.1%} < "
        "min_cluster_share=10.0%"
        + (f"; smallest cluster {size} user(s) < min_cluster_size=5" if size < 5 else "")
        for sil, k, size in rows
    )
    with pytest.raises(SearchError) as info:
        run_search(X, cfg)
    assert str(info.value) == (
        "none of the 2 candidates meets the selection rules. Best few:\n"
        f"{lines}\n"
        "What the leaderboard suggests:\n"
        "- check the features: the candidates break the rules in different ways (see "
        "candidates.csv and report.md for every rejection reason)"
    )


def test_run_search_none_eligible_shows_at_most_five() -> None:
    X = blobs([95, 5], [(0, 0), (30, 0)], seed=6)
    cfg = SearchConfig.model_validate(
        {
            "kmeans": {"k": [2, 8], "n_init": 1},
            "agglomerative": None,
            "dbscan": None,
            "min_cluster_share": 0.2,
        }
    )
    with pytest.raises(SearchError) as info:
        run_search(X, cfg)
    message = str(info.value)
    assert message.startswith("none of the 7 candidates meets the selection rules. Best few:\n")
    assert sum(line.startswith("  kmeans(k=") for line in message.splitlines()) == 5


def test_run_search_skips_k_not_below_row_count() -> None:
    X = blobs([6, 6], [(0, 0), (5, 5)], seed=7)
    cfg = SearchConfig.model_validate(
        {
            "kmeans": {"k": [2, 20], "n_init": 1},
            "agglomerative": None,
            "dbscan": None,
            "min_cluster_share": 0.0,
            "max_clusters": 20,
        }
    )
    res = run_search(X, cfg)
    assert [c.params["k"] for c in res.candidates] == list(range(2, 12))


def test_run_search_nothing_fittable_is_an_error() -> None:
    X = blobs([5, 5], [(0, 0), (5, 5)], seed=8)
    cfg = SearchConfig.model_validate(
        {
            "kmeans": {"k": [10, 12]},
            "agglomerative": {"k": [10, 11], "linkage": ["ward"]},
            "dbscan": None,
            "max_clusters": 12,
        }
    )
    with pytest.raises(SearchError) as info:
        run_search(X, cfg)
    assert str(info.value) == "no candidate could be fitted on 10 rows; lower the k ranges"


def test_search_config_rejects_single_linkage() -> None:
    # Single linkage is not offered: sklearn builds it with its own MST code, so a shared
    # scipy/fastcluster tree could break ties differently.
    with pytest.raises(ValidationError, match="'ward', 'average' or 'complete'"):
        SearchConfig.model_validate({"agglomerative": {"linkage": ["single"]}})


# --------------------------------------------------------------------------- elbow


def kneedle(wcss: dict[int, float]) -> int | None:
    """Independent kneedle: distance of each normalised point below the chord."""
    ks = sorted(wcss)
    if len(ks) < 3 or wcss[ks[0]] <= wcss[ks[-1]]:
        return None
    best, best_gap = None, -math.inf
    for k in ks:
        x = (k - ks[0]) / (ks[-1] - ks[0])
        y = (wcss[k] - wcss[ks[-1]]) / (wcss[ks[0]] - wcss[ks[-1]])  # falling from 1 to 0
        gap = (1 - x) - y  # chord y = 1 - x
        if gap > best_gap:
            best, best_gap = k, gap
    return best


@pytest.mark.parametrize(
    ("wcss", "expected"),
    [
        ({2: 100.0, 3: 30.0, 4: 25.0, 5: 22.0, 6: 20.0}, 3),
        ({2: 100.0, 3: 80.0, 4: 60.0, 5: 15.0, 6: 12.0, 7: 10.0}, 5),
        ({2: 10.0, 3: 9.0}, None),
        ({2: 5.0, 3: 5.0, 4: 5.0}, None),
        ({2: 5.0, 3: 6.0, 4: 7.0}, None),
    ],
)
def test_elbow_finds_the_knee(wcss: dict[int, float], expected: int | None) -> None:
    assert elbow(wcss) == expected
    assert kneedle(wcss) == expected


def test_run_search_elbow_is_kneedle_of_kmeans_inertia(X: np.ndarray) -> None:
    cfg = SearchConfig.model_validate(
        {
            "kmeans": {"k": [2, 7], "n_init": 2},
            "agglomerative": None,
            "dbscan": None,
        }
    )
    res = run_search(X, cfg)
    with threadpool_limits(1):
        wcss = {
            k: KMeans(n_clusters=k, n_init=2, random_state=0).fit(X).inertia_ for k in range(2, 8)
        }
    assert res.elbow_k == kneedle(wcss)
    assert res.elbow_k is not None


def test_run_search_without_kmeans_has_no_elbow(X: np.ndarray) -> None:
    cfg = SearchConfig.model_validate(
        {
            "kmeans": None,
            "agglomerative": {"k": [2, 4], "linkage": ["ward"]},
            "dbscan": None,
        }
    )
    res = run_search(X, cfg)
    assert res.elbow_k is None and res.wcss == {}
