import numpy as np
import pytest
from cluster_data import blobs_with_noise
from scipy.spatial.distance import pdist
from sklearn.cluster import AgglomerativeClustering

from apg.search.kernels import (
    hierarchical_labels,
    labels_from_linkage,
    linkage_matrices,
)

KS = range(2, 11)


DATASETS = {
    "blobs2d": blobs_with_noise(400, 2, 0, duplicates=False),
    "blobs5d_dup": blobs_with_noise(500, 5, 1, duplicates=True),
    "blobs3d_dup": blobs_with_noise(300, 3, 2, duplicates=True),
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
