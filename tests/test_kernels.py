import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import pdist
from sklearn.cluster import DBSCAN, AgglomerativeClustering, KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import silhouette_score

from apg.kernels import (
    DbscanNeighbors,
    hierarchical_labels,
    kdistance_eps_grid,
    labels_from_linkage,
    linkage_matrices,
    silhouette_many,
)

KS = range(2, 11)


def _blobs_with_noise(n: int, dim: int, seed: int, duplicates: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n_noise = n // 10
    X, _ = make_blobs(n_samples=n - n_noise, n_features=dim, centers=4, random_state=seed)
    noise = rng.uniform(X.min(axis=0), X.max(axis=0), size=(n_noise, dim))
    X = np.vstack([X, noise])
    if duplicates:
        copies = rng.choice(n, size=n // 5, replace=False)
        X[copies[: n // 10]] = X[copies[n // 10 :]]
    return X[rng.permutation(n)]


DATASETS = {
    "blobs2d": _blobs_with_noise(400, 2, 0, duplicates=False),
    "blobs5d_dup": _blobs_with_noise(500, 5, 1, duplicates=True),
    "blobs3d_dup": _blobs_with_noise(300, 3, 2, duplicates=True),
}


@pytest.fixture(params=sorted(DATASETS))
def X(request: pytest.FixtureRequest) -> np.ndarray:
    return DATASETS[request.param]


def test_hierarchical_labels_identical_to_sklearn(X: np.ndarray) -> None:
    linkages = ("ward", "average", "complete")
    got = hierarchical_labels(X, linkages, KS)
    assert set(got) == {(m, k) for m in linkages for k in KS}
    for (method, k), labels in got.items():
        expected = AgglomerativeClustering(n_clusters=k, linkage=method).fit(X)
        assert labels.dtype == expected.labels_.dtype
        assert np.array_equal(labels, expected.labels_), (method, k)


def test_hierarchical_labels_reuses_given_condensed_matrix() -> None:
    X = DATASETS["blobs2d"]
    condensed = pdist(X)
    got = hierarchical_labels(X, ["average"], [3], condensed=condensed)
    expected = AgglomerativeClustering(n_clusters=3, linkage="average").fit(X)
    assert np.array_equal(got[("average", 3)], expected.labels_)


def test_hierarchical_labels_k_extremes_match_sklearn() -> None:
    X = DATASETS["blobs3d_dup"][:40]
    Z = linkage_matrices(X, ["complete"])["complete"]
    got = labels_from_linkage(Z, [1, 39, 40])
    assert np.array_equal(got[1], np.zeros(40, dtype=np.intp))
    for k in (39, 40):
        expected = AgglomerativeClustering(n_clusters=k, linkage="complete").fit(X)
        assert np.array_equal(got[k], expected.labels_)


def test_hierarchical_labels_rejects_bad_input() -> None:
    X = DATASETS["blobs2d"][:10]
    with pytest.raises(ValueError):
        hierarchical_labels(X, ["single"], [2])
    with pytest.raises(ValueError):
        hierarchical_labels(X, ["ward"], [11])


def test_dbscan_labels_identical_to_sklearn(X: np.ndarray) -> None:
    grid = kdistance_eps_grid(X, [3, 5, 10], [0.05, 0.5, 0.9])
    eps_values = sorted({e for values in grid.values() for e in values})
    # Tiny eps: all noise; huge eps: one cluster.
    eps_values = [1e-3, *eps_values, 100.0]
    neighbors = DbscanNeighbors(X, max(eps_values))
    seen = set()
    for eps in eps_values:
        for m in (1, 3, 5, 10):
            labels, core = neighbors.fit(eps, m)
            expected = DBSCAN(eps=eps, min_samples=m).fit(X)
            assert np.array_equal(labels, expected.labels_), (eps, m)
            assert np.array_equal(core, expected.core_sample_indices_), (eps, m)
            assert np.array_equal(neighbors.labels(eps, m), labels)
            seen.add(int(labels.max()) + 1)
    assert 0 in seen and 1 in seen and max(seen) > 2


def test_dbscan_core_sample_indices_match_fit() -> None:
    X = DATASETS["blobs2d"]
    neighbors = DbscanNeighbors(X, 2.0)
    expected = DBSCAN(eps=0.7, min_samples=6).fit(X)
    assert np.array_equal(neighbors.core_sample_indices(0.7, 6), expected.core_sample_indices_)


def test_dbscan_rejects_eps_above_max() -> None:
    neighbors = DbscanNeighbors(DATASETS["blobs2d"], 1.0)
    with pytest.raises(ValueError):
        neighbors.labels(1.5, 5)


def test_kdistance_eps_grid_quantile_share_of_core_points(X: np.ndarray) -> None:
    quantiles = [0.1, 0.5, 0.8, 0.95]
    grid = kdistance_eps_grid(X, [2, 5, 12], quantiles)
    neighbors = DbscanNeighbors(X, max(max(v) for v in grid.values()))
    for m, eps_values in grid.items():
        assert eps_values == sorted(set(eps_values))
        assert all(e > 0 for e in eps_values)
        assert all(float(f"{e:.4g}") == e for e in eps_values)
        shares = [np.mean(neighbors.neighbor_counts(e) >= m) for e in eps_values]
        # Rounding up keeps at least share q core and each share is reached
        # by some value in the grid.
        for q in quantiles:
            assert any(q <= s for s in shares)
        assert shares == sorted(shares)
        for e, s in zip(eps_values, shares, strict=True):
            dbscan_core = DBSCAN(eps=e, min_samples=m).fit(X).core_sample_indices_
            assert s == pytest.approx(dbscan_core.size / len(X))


def test_kdistance_eps_grid_each_quantile_share_reached() -> None:
    X = DATASETS["blobs2d"]
    for q in (0.05, 0.3, 0.7, 1.0):
        (eps,) = kdistance_eps_grid(X, [4], [q])[4]
        counts = DbscanNeighbors(X, eps).neighbor_counts(eps)
        assert np.mean(counts >= 4) >= q


def test_kdistance_eps_grid_drops_zero_distances() -> None:
    X = np.repeat(np.arange(10.0)[:, None], 3, axis=0)
    grid = kdistance_eps_grid(X, [2, 4], [0.5, 1.0])
    assert grid[2] == []
    assert grid[4] == [1.0]


def test_silhouette_many_matches_sklearn(X: np.ndarray) -> None:
    labelings = [KMeans(k, n_init=1, random_state=0).fit(X).labels_ for k in (2, 5)]
    labelings += [
        AgglomerativeClustering(n_clusters=k, linkage=m).fit(X).labels_
        for m, k in (("ward", 3), ("average", 8), ("complete", 10))
    ]
    eps_values = kdistance_eps_grid(X, [5], [0.3, 0.5])[5]
    labelings += [DBSCAN(eps=e, min_samples=5).fit(X).labels_ for e in eps_values]
    assert any((labels == -1).any() for labels in labelings)
    expected = []
    for labels in labelings:
        keep = labels >= 0
        expected.append(silhouette_score(X[keep], labels[keep]))
    # Small chunks exercise the chunk loop; None uses the default size.
    for chunk_rows in (None, 37):
        got = silhouette_many(X, labelings, chunk_rows=chunk_rows)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_silhouette_many_nan_for_degenerate_labelings() -> None:
    X = DATASETS["blobs2d"][:50]
    one_cluster = np.zeros(50, dtype=int)
    all_noise = np.full(50, -1)
    two_points = np.full(50, -1)
    two_points[:2] = [0, 1]
    all_singletons = np.arange(50)
    good = np.arange(50) % 2
    got = silhouette_many(X, [one_cluster, all_noise, two_points, all_singletons, good])
    assert all(math.isnan(s) for s in got[:4])
    assert got[4] == pytest.approx(silhouette_score(X, good), abs=1e-6)


def test_silhouette_many_singleton_clusters_score_zero() -> None:
    X = DATASETS["blobs2d"][:30]
    labels = np.r_[np.zeros(15, int), np.ones(13, int), 2, 3]
    (got,) = silhouette_many(X, [labels])
    assert got == pytest.approx(silhouette_score(X, labels), abs=1e-6)


_HYPOTHESIS_X = np.random.default_rng(7).normal(size=(30, 3))


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=30),
    data=st.data(),
    chunk_rows=st.one_of(st.none(), st.integers(min_value=1, max_value=12)),
)
def test_silhouette_many_matches_sklearn_on_random_labelings(
    n: int, data: st.DataObject, chunk_rows: int | None
) -> None:
    X = _HYPOTHESIS_X[:n]
    label = st.integers(min_value=-1, max_value=5)
    labelings = [
        np.array(data.draw(st.lists(label, min_size=n, max_size=n)))
        for _ in range(data.draw(st.integers(min_value=1, max_value=4)))
    ]
    got = silhouette_many(X, labelings, chunk_rows=chunk_rows)
    for labels, score in zip(labelings, got, strict=True):
        keep = labels >= 0
        n_clusters = np.unique(labels[keep]).size
        if not 2 <= n_clusters <= keep.sum() - 1:
            # sklearn raises here.
            assert math.isnan(score)
            continue
        assert score == pytest.approx(silhouette_score(X[keep], labels[keep]), abs=1e-6)
