"""silhouette_many against sklearn's silhouette_score, labeling by labeling."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.cluster import DBSCAN, AgglomerativeClustering, KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import silhouette_score

from apg.search.kernels import labels_from_linkage, linkage_matrices
from apg.search.silhouettes import _plan, silhouette_many


def _data(n: int, dim: int, seed: int, duplicates: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X, _ = make_blobs(n_samples=n, n_features=dim, centers=4, random_state=seed)
    if duplicates:
        X[: n // 10] = X[n // 10 : n // 5]
    # Far from the origin: the squared-norm trick must not lose precision to the offset.
    return X[rng.permutation(n)] + 1000.0


DATASETS = {
    "blobs2d": _data(400, 2, 0, duplicates=False),
    "blobs5d_dup": _data(500, 5, 1, duplicates=True),
    "integers": np.random.default_rng(3).integers(1, 6, size=(300, 4)).astype(float),
}


def _sklearn(X: np.ndarray, labels: np.ndarray) -> float:
    keep = labels >= 0
    return float(silhouette_score(X[keep], labels[keep]))


@pytest.fixture(params=sorted(DATASETS))
def X(request: pytest.FixtureRequest) -> np.ndarray:
    return DATASETS[request.param]


def test_every_algorithm_matches_sklearn(X: np.ndarray) -> None:
    labelings = [KMeans(k, n_init=1, random_state=0).fit(X).labels_ for k in (2, 5, 9)]
    labelings += [
        AgglomerativeClustering(n_clusters=k, linkage=m).fit(X).labels_
        for m, k in (("ward", 3), ("average", 8), ("complete", 10))
    ]
    eps = np.quantile(np.linalg.norm(X - X[0], axis=1), [0.01, 0.05, 0.1])
    labelings += [DBSCAN(eps=e, min_samples=6).fit(X).labels_ for e in eps]
    assert any((labels == -1).any() for labels in labelings)
    expected = [_sklearn(X, labels) for labels in labelings if len(set(labels) - {-1}) >= 2]
    labelings = [labels for labels in labelings if len(set(labels) - {-1}) >= 2]
    # Small chunks exercise the chunk loop across threads; None uses the default size.
    for chunk_rows, threads in ((None, None), (37, 2), (37, 1), (1000, 3)):
        got = silhouette_many(X, labelings, chunk_rows=chunk_rows, threads=threads)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_tree_cuts_share_columns_and_match_sklearn(X: np.ndarray) -> None:
    Z = linkage_matrices(X, ["average"])["average"]
    cuts = list(labels_from_linkage(Z, range(2, 11)).values())
    plans, members, derives = _plan(cuts, len(X))
    # Each deeper cut splits one cluster in two, so at most two new member sets per cut;
    # the largest cluster of each cut comes from the row sum (54 clusters in all).
    assert derives
    assert len(members) <= 1 + 2 * 8
    assert all(p is not None and (p.columns == -1).sum() == 1 for p in plans)
    got = silhouette_many(X, cuts, chunk_rows=64)
    np.testing.assert_allclose(got, [_sklearn(X, c) for c in cuts], rtol=0, atol=1e-6)


def test_results_do_not_depend_on_threads_or_chunks() -> None:
    X = DATASETS["blobs5d_dup"]
    labelings = [KMeans(k, n_init=1, random_state=0).fit(X).labels_ for k in (3, 6)]
    one = silhouette_many(X, labelings, chunk_rows=50, threads=1)
    assert silhouette_many(X, labelings, chunk_rows=50, threads=4) == one


def test_nan_for_labelings_sklearn_rejects() -> None:
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
    assert all(math.isnan(s) for s in silhouette_many(X, [one_cluster, all_noise]))


def test_singleton_clusters_score_zero_as_in_sklearn() -> None:
    X = DATASETS["blobs2d"][:30]
    labels = np.r_[np.zeros(15, int), np.ones(13, int), 2, 3]
    (got,) = silhouette_many(X, [labels])
    assert got == pytest.approx(silhouette_score(X, labels), abs=1e-6)


def test_bad_arguments_are_refused() -> None:
    X = DATASETS["blobs2d"][:10]
    with pytest.raises(ValueError, match=r"labels must have shape \(10,\), got \(9,\)"):
        silhouette_many(X, [np.zeros(9, int)])
    with pytest.raises(ValueError, match="chunk_rows must be >= 1, got 0"):
        silhouette_many(X, [np.arange(10) % 2], chunk_rows=0)
    with pytest.raises(ValueError, match="X must be 2-dimensional"):
        silhouette_many(X[:, 0], [np.arange(10) % 2])


_HYPOTHESIS_X = np.random.default_rng(7).normal(size=(30, 3))


@settings(max_examples=80, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=30),
    data=st.data(),
    chunk_rows=st.one_of(st.none(), st.integers(min_value=1, max_value=12)),
)
def test_random_labelings_match_sklearn(
    n: int, data: st.DataObject, chunk_rows: int | None
) -> None:
    X = _HYPOTHESIS_X[:n]
    label = st.integers(min_value=-1, max_value=5)
    labelings = [
        np.array(data.draw(st.lists(label, min_size=n, max_size=n)))
        for _ in range(data.draw(st.integers(min_value=1, max_value=4)))
    ]
    # Repeat one labeling: shared columns must not change its score.
    labelings.append(labelings[0].copy())
    got = silhouette_many(X, labelings, chunk_rows=chunk_rows, threads=2)
    for labels, score in zip(labelings, got, strict=True):
        keep = labels >= 0
        n_clusters = np.unique(labels[keep]).size
        if not 2 <= n_clusters <= keep.sum() - 1:
            # sklearn raises here.
            assert math.isnan(score)
            continue
        assert score == pytest.approx(_sklearn(X, labels), abs=1e-6)
