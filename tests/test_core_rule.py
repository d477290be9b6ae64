"""DBSCAN's placement rule (apg.search.core_rule) against a direct computation."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import DBSCAN
from sklearn.metrics import pairwise_distances
from sklearn.neighbors import NearestNeighbors

from apg.search.clusters import ClusterModel
from apg.search.core_rule import CoreRule


def direct(cores: np.ndarray, labels: np.ndarray, eps: float, X: np.ndarray) -> np.ndarray:
    """The rule written out: the nearest core's cluster if it lies within eps, else -1, with
    distances summed in feature order (the rule's stated arithmetic, which decides ties at
    eps to the last bit)."""
    diff = X[:, None, :] - cores[None, :, :]
    d = np.zeros((len(X), len(cores)))
    for j in range(X.shape[1]):
        d += diff[:, :, j] ** 2
    d = np.sqrt(d)
    nearest = d.argmin(axis=1)
    return np.where(d[np.arange(len(X)), nearest] <= eps, labels[nearest], -1)


def blobs(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 5, (4, d))
    X = centres[rng.integers(0, 4, n)] + rng.normal(0, 1, (n, d))
    return np.vstack([X, rng.uniform(-15, 15, (n // 20, d))])


@pytest.mark.parametrize("d", [2, 5, 15, 30])
def test_matches_direct_rule_and_kneighbors(d: int) -> None:
    X = blobs(3000, d, seed=d)
    fit_rows, new_rows = X[::3], X
    eps = float(np.quantile(pairwise_distances(fit_rows[:300]), 0.02)) * 1.5
    db = DBSCAN(eps=eps, min_samples=5).fit(fit_rows)
    cores, labels = fit_rows[db.core_sample_indices_], db.labels_[db.core_sample_indices_]
    assert len(set(labels)) >= 2
    got = CoreRule(cores, labels, eps).predict(new_rows)
    np.testing.assert_array_equal(got, direct(cores, labels, eps, new_rows))
    # The rule it replaced: an unbounded kneighbors query, then the eps test.
    dist, idx = NearestNeighbors(n_neighbors=1).fit(cores).kneighbors(new_rows)
    np.testing.assert_array_equal(got, np.where(dist[:, 0] <= eps, labels[idx[:, 0]], -1))
    assert (got == -1).any() and (got >= 0).any()
    # Core samples keep their own cluster; the model applies the same rule block by block.
    np.testing.assert_array_equal(CoreRule(cores, labels, eps).predict(cores), labels)
    model = ClusterModel("core", cores, labels, eps)
    np.testing.assert_array_equal(model.predict(new_rows, chunk_rows=500), got)


def test_distance_exactly_eps_is_inside_and_just_beyond_is_noise() -> None:
    cores = np.array([[0.0, 0.0], [10.0, 0.0]])
    rule = CoreRule(cores, np.array([0, 1]), eps=0.3)
    X = np.array([[0.3, 0.0], [np.nextafter(0.3, 1), 0.0], [10.0, -0.3], [5.0, 5.0]])
    np.testing.assert_array_equal(rule.predict(X), [0, -1, 1, -1])


def test_nearest_core_decides_between_clusters() -> None:
    cores = np.array([[0.0], [1.0]])
    rule = CoreRule(cores, np.array([3, 7]), eps=0.8)
    np.testing.assert_array_equal(rule.predict(np.array([[0.4], [0.6], [1.9]])), [3, 7, -1])


def test_no_core_samples_or_no_rows() -> None:
    assert (
        CoreRule(np.empty((0, 3)), np.empty(0, dtype=int), 1.0).predict(np.ones((4, 3))).tolist()
        == [-1] * 4
    )
    assert CoreRule(np.ones((2, 3)), np.array([0, 0]), 1.0).predict(np.empty((0, 3))).size == 0


def test_users_around_eps_and_between_clusters_match_direct_rule() -> None:
    """Every path of the rule: certified cluster, certified noise, and the exact query."""
    rng = np.random.default_rng(7)
    cores = np.vstack(
        [rng.normal(0, 0.2, (200, 4)), rng.normal(0, 0.2, (200, 4)) + np.array([2, 0, 0, 0])]
    )
    labels = np.repeat([0, 1], 200)
    eps = 0.9
    anchor = cores[rng.integers(0, 400, 4000)]
    direction = rng.normal(size=(4000, 4))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    scale = rng.choice([0.1, 0.5, 0.999999, 1.0, 1.000001, 1.5, 2.0, 2.1, 5.0], 4000)
    X = np.vstack([anchor + direction * (eps * scale)[:, None], [[1, 0, 0, 0], [1.0001, 0, 0, 0]]])
    got = CoreRule(cores, labels, eps).predict(X)
    np.testing.assert_array_equal(got, direct(cores, labels, eps, X))
    assert {-1, 0, 1} <= set(got.tolist())
