"""The DBSCAN neighbour pass within a memory budget: the pair estimate, the skipped eps, and
the traced peak on a high-dimensional heavy-tailed table where every user neighbours most."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler

from apg.config import DbscanGrid
from apg.search.candidates import dbscan_candidates
from apg.search.eps_grid import estimated_pairs


def heavy_tailed(n: int = 3000, d: int = 20, seed: int = 1) -> np.ndarray:
    """Correlated log-normal spend with a third of users inactive (all zeros), scaled: the
    bulk sits in a small ball, so a high-quantile eps reaches most of the table."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 1))
    X = np.exp(0.8 * rng.normal(size=(n, d)) + 0.6 * z)
    X[rng.random(n) < 0.3] = 0.0
    return StandardScaler().fit_transform(X)


def test_estimated_pairs_is_close_to_the_true_count() -> None:
    X = heavy_tailed(2000, 20)
    eps = [0.5, 1.0, 2.0]
    true = [
        sum(len(r) for r in NearestNeighbors(radius=e).fit(X).radius_neighbors(X)[1]) for e in eps
    ]
    got = estimated_pairs(X, eps, sample_rows=512, seed=0)
    for g, t in zip(got, true, strict=True):
        assert g == pytest.approx(t, rel=0.15)
    assert list(estimated_pairs(X, eps, seed=0)) == list(got)  # seeded


def test_dbscan_skips_the_eps_that_would_not_fit_and_says_so() -> None:
    X = heavy_tailed()
    said: list[str] = []
    unbounded = dbscan_candidates(X, DbscanGrid(max_pairs=None))
    bounded = dbscan_candidates(X, DbscanGrid(max_pairs=5_000_000), said.append)
    all_eps = sorted({c.params["eps"] for _, group in unbounded for c in group})
    kept = sorted({c.params["eps"] for _, group in bounded for c in group})
    assert kept == all_eps[: len(kept)] and 0 < len(kept) < len(all_eps)
    (line,) = said
    assert line.startswith(f"search: dbscan eps >= {all_eps[len(kept)]} skipped: about ")
    assert line.endswith("M neighbour pairs > search.dbscan.max_pairs=5M")
    # What is kept is exactly what the unbounded pass gives for those settings.
    by_key = {c.key: c for _, group in unbounded for c in group}
    for _, group in bounded:
        for c in group:
            assert np.array_equal(c.labels, by_key[c.key].labels)


def test_dbscan_pass_peak_memory_follows_the_budget() -> None:
    X = heavy_tailed()
    peaks = {}
    for budget in (None, 5_000_000):
        tracemalloc.start()
        dbscan_candidates(X, DbscanGrid(max_pairs=budget))
        peaks[budget] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    pairs = 5_000_000
    # About 24 bytes a kept pair at the peak, plus the matrix-sized working arrays.
    assert peaks[5_000_000] < 24 * pairs + 64 * X.nbytes
    assert peaks[None] > 1.5 * peaks[5_000_000]  # 8.2M pairs unbounded
