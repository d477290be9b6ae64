"""DbscanNeighbors and kdistance_eps_grid against scikit-learn's own DBSCAN and NearestNeighbors.

Every comparison is exact: same labels, same core samples, same neighbour counts. The data sets
cover the kd-tree path (at most 15 features, more than 11 rows) and the brute-force fallback,
and eps values that equal distances of the data, where rounding decides membership.
"""

import itertools
import math

import numpy as np
import pytest
from cluster_data import blobs_with_noise
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.cluster import DBSCAN
from sklearn.neighbors import NearestNeighbors

from apg.search.eps_grid import kdistance_eps_grid
from apg.search.neighbors import DbscanNeighbors, _Scan


def _standardized_survey(n: int, seed: int) -> np.ndarray:
    """Like the search's input: 11 standardized columns, most of them few-valued."""
    rng = np.random.default_rng(seed)
    columns = [
        rng.poisson(3, n),
        rng.integers(1, 6, n),
        rng.lognormal(0, 1, n),
        rng.integers(0, 2, n),
        rng.poisson(1, n),
        rng.gamma(2, 2, n),
        rng.integers(0, 11, n),
        rng.binomial(4, 0.3, n),
        rng.integers(0, 3, n),
        rng.normal(0, 1, n).round(1),
        rng.integers(18, 70, n),
    ]
    X = np.column_stack(columns).astype(float)
    return (X - X.mean(axis=0)) / X.std(axis=0)


def _cube_corners() -> np.ndarray:
    """Corners of the unit cube, twice, and a few points in between: at eps = sqrt(3) the
    kd-tree keeps whole boxes whose farthest corner is at sqrt(3), although
    3 > sqrt(3) * sqrt(3) in doubles."""
    corners = np.array(list(itertools.product([0.0, 1.0], repeat=3)))
    return np.vstack([corners, corners, [[0.5, 0.5, 0.5], [0.0, 0.5, 1.0], [1.0, 0.5, 0.0]]])


RNG = np.random.default_rng(11)
DATASETS = {
    "blobs2d": blobs_with_noise(400, 2, 0, duplicates=False),
    "blobs5d_dup": blobs_with_noise(500, 5, 1, duplicates=True),
    "blobs3d_dup": blobs_with_noise(300, 3, 2, duplicates=True),
    "uniform11d": RNG.uniform(size=(400, 11)),
    "integers3d": RNG.integers(0, 6, size=(300, 3)).astype(float),
    "survey11d": _standardized_survey(700, 3),
    "cube": _cube_corners(),
    "wide20d": blobs_with_noise(200, 20, 4, duplicates=True),
}
BRUTE = {"wide20d"}


def _algorithm(X: np.ndarray) -> str:
    return NearestNeighbors(radius=1.0).fit(X)._fit_method


def _eps_values(X: np.ndarray) -> list[float]:
    """The search's kind of eps (4 significant digits), eps equal to distances of the data
    (and one ulp either side), one eps that finds only noise and one that joins everything."""
    grid = kdistance_eps_grid(X, [3, 5, 10], [0.05, 0.5, 0.9])
    values = {e for eps in grid.values() for e in eps}
    dist, _ = NearestNeighbors(n_neighbors=8).fit(X).kneighbors(X)
    distinct = np.unique(dist[dist > 0])
    for d in distinct[np.linspace(0, distinct.size - 1, 4).astype(int)]:
        values |= {float(d), float(np.nextafter(d, 0)), float(np.nextafter(d, np.inf))}
    span = float(np.linalg.norm(X.max(axis=0) - X.min(axis=0)))
    return sorted(values | {1e-3, 2 * span + 1})


def _assert_same_as_dbscan(X: np.ndarray, eps_values: list[float], ms: list[int]) -> list:
    """Fit every setting with increasing eps (each fit grows the previous clusters), then
    again in reverse (each fit from scratch); return sklearn's fitted models."""
    models = {}
    neighbors = DbscanNeighbors(X, eps_values)
    for m in ms:
        for eps in sorted(eps_values):
            expected = DBSCAN(eps=eps, min_samples=m).fit(X)
            labels, core = neighbors.fit(eps, m)
            assert labels.dtype == expected.labels_.dtype
            assert np.array_equal(labels, expected.labels_), (eps, m)
            assert np.array_equal(core, expected.core_sample_indices_), (eps, m)
            models[eps, m] = expected
    backwards = DbscanNeighbors(X, eps_values)
    for (eps, m), expected in reversed(models.items()):
        assert np.array_equal(backwards.labels(eps, m), expected.labels_), (eps, m)
        assert np.array_equal(
            backwards.core_sample_indices(eps, m), expected.core_sample_indices_
        ), (eps, m)
    return list(models.values())


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_dbscan_identical_to_sklearn(name: str) -> None:
    X = DATASETS[name]
    assert _algorithm(X) == ("brute" if name in BRUTE else "kd_tree")
    eps_values = _eps_values(X)
    models = _assert_same_as_dbscan(X, eps_values, [1, 3, 5, 10])
    neighbors = DbscanNeighbors(X, eps_values)
    for eps in eps_values:
        members = NearestNeighbors(radius=eps).fit(X).radius_neighbors(X, return_distance=False)
        counts = np.array([len(row) for row in members])
        assert np.array_equal(neighbors.neighbor_counts(eps), counts), eps
    # The settings cover noise, one cluster, several clusters and border samples.
    n_clusters = {int(model.labels_.max()) + 1 for model in models}
    assert 1 in n_clusters and max(n_clusters) >= 2
    assert any((model.labels_ == -1).any() for model in models)
    assert any((model.labels_ >= 0).sum() > model.core_sample_indices_.size for model in models)


def test_dbscan_kd_tree_whole_boxes_at_exact_distances() -> None:
    X = DATASETS["cube"]
    eps_values = [math.sqrt(2.0), math.sqrt(3.0), 2.0]
    assert math.sqrt(3.0) ** 2 < 3.0
    members = NearestNeighbors(radius=math.sqrt(3.0)).fit(X).radius_neighbors(X)[1]
    # scikit-learn keeps the opposite corner, at squared distance 3.
    assert all(len(row) == len(X) for row in members)
    neighbors = DbscanNeighbors(X, eps_values)
    assert np.array_equal(neighbors.neighbor_counts(math.sqrt(3.0)), np.full(len(X), len(X)))
    _assert_same_as_dbscan(X, eps_values, [2, 8, len(X), len(X) + 1])


@pytest.mark.parametrize("border_cluster_first", [True, False])
def test_dbscan_border_sample_reachable_from_two_clusters(border_cluster_first: bool) -> None:
    left = [[0.1 * i, 0.0] for i in range(5)]
    right = [[2.0 + 0.1 * i, 0.0] for i in range(5)]
    far = [[10.0 + 0.1 * i, 5.0] for i in range(5)]
    first, second = (right, left) if border_cluster_first else (left, right)
    X = np.array(first + second + far + [[1.2, 0.0]])
    border = len(X) - 1
    assert _algorithm(X) == "kd_tree"
    eps_values = [0.5, 0.85]
    models = _assert_same_as_dbscan(X, eps_values, [4])
    expected = models[-1]
    # Within 0.85 of the last sample of one cluster and the first of the other, itself not
    # core: it goes to the cluster numbered first.
    assert border not in expected.core_sample_indices_
    assert expected.labels_[border] == 0
    assert set(expected.labels_[:10]) == {0, 1}


@st.composite
def _small_problem(draw: st.DrawFn) -> tuple[np.ndarray, list[float]]:
    """Up to 40 points on a coarse grid (ties everywhere), eps equal to some of their
    distances as scikit-learn computes them, and one ulp either side."""
    n = draw(st.integers(min_value=1, max_value=40))
    dim = draw(st.integers(min_value=1, max_value=4))
    scale = draw(st.sampled_from([1.0, 0.1, 0.3, 1 / 3]))
    values = draw(st.lists(st.integers(-3, 3), min_size=n * dim, max_size=n * dim))
    X = np.array(values, dtype=float).reshape(n, dim) * scale
    dist, _ = NearestNeighbors(n_neighbors=n).fit(X).kneighbors(X)
    positive = np.unique(dist[dist > 0])
    if positive.size == 0:
        positive = np.array([1.0])
    picks = draw(st.lists(st.integers(0, positive.size - 1), min_size=1, max_size=4))
    eps = set()
    for d in positive[picks]:
        eps |= {float(d), float(np.nextafter(d, 0)), float(np.nextafter(d, np.inf))}
    return X, sorted(eps)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    problem=_small_problem(),
    ms=st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=3, unique=True),
)
def test_dbscan_identical_to_sklearn_on_small_random_data(
    problem: tuple[np.ndarray, list[float]], ms: list[int]
) -> None:
    X, eps_values = problem
    _assert_same_as_dbscan(X, eps_values, ms)


def test_dbscan_core_sample_indices_match_fit() -> None:
    X = DATASETS["blobs2d"]
    neighbors = DbscanNeighbors(X, [0.7, 2.0])
    expected = DBSCAN(eps=0.7, min_samples=6).fit(X)
    assert np.array_equal(neighbors.core_sample_indices(0.7, 6), expected.core_sample_indices_)


def test_dbscan_rejects_eps_not_given_up_front() -> None:
    neighbors = DbscanNeighbors(DATASETS["blobs2d"], [1.0, 0.5])
    assert neighbors.eps_values == (0.5, 1.0)
    for call in (
        lambda: neighbors.fit(0.7, 5),
        lambda: neighbors.labels(1.5, 5),
        lambda: neighbors.core_sample_indices(0.25, 5),
        lambda: neighbors.neighbor_counts(0.7),
    ):
        with pytest.raises(ValueError, match=r"eps=.* not among .*\[0\.5, 1\.0\]"):
            call()
    for bad in ([], [0.0, 1.0], [-1.0], [math.inf]):
        with pytest.raises(ValueError):
            DbscanNeighbors(DATASETS["blobs2d"], bad)


@pytest.mark.parametrize("name", sorted(set(DATASETS) - BRUTE))
def test_k_distances_identical_to_kneighbors(name: str) -> None:
    X = DATASETS[name]
    ks = [1, 2, 5, 9]
    expected, _ = NearestNeighbors(n_neighbors=max(ks)).fit(X).kneighbors(X)
    got = np.sqrt(_Scan(X).kth_rdists(ks))
    assert np.array_equal(got, expected[:, [k - 1 for k in ks]])


@pytest.fixture(params=sorted(DATASETS))
def X(request: pytest.FixtureRequest) -> np.ndarray:
    return DATASETS[request.param]


def test_kdistance_eps_grid_quantile_share_of_core_points(X: np.ndarray) -> None:
    quantiles = [0.1, 0.5, 0.8, 0.95]
    grid = kdistance_eps_grid(X, [2, 5, 12], quantiles)
    neighbors = DbscanNeighbors(X, [e for values in grid.values() for e in values])
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
        counts = DbscanNeighbors(X, [eps]).neighbor_counts(eps)
        assert np.mean(counts >= 4) >= q


def test_kdistance_eps_grid_drops_zero_distances() -> None:
    X = np.repeat(np.arange(10.0)[:, None], 3, axis=0)
    grid = kdistance_eps_grid(X, [2, 4], [0.5, 1.0])
    assert grid[2] == []
    assert grid[4] == [1.0]


@pytest.mark.parametrize("rows", [1, 7, 64])
def test_dbscan_brute_force_in_query_chunks_identical_to_sklearn(
    rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The >15-feature path queries a chunk of rows at a time (memory); distances within ulps
    # of an eps (the data's own distances +-1 ulp are in the grid) are still DBSCAN's.
    from apg.search import neighbors as module

    monkeypatch.setattr(module, "_QUERY_ROWS", rows)
    X = DATASETS["wide20d"]
    _assert_same_as_dbscan(X, _eps_values(X), [1, 3, 5])
