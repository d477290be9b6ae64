"""The DBSCAN eps grid: candidate eps values per ``min_samples`` from the k-distance curve,
and how many neighbour pairs an eps would hold.

:func:`kdistance_eps_grid` returns ``kneighbors``' distances (sqrt of the kd-tree's rdist,
computed by :class:`apg.search.neighbors._Scan`) with one caveat: the kd-tree skips a node whose
box lies beyond the current k-th neighbour, so a k-distance tied within an ulp with a point on a
box boundary could in theory differ by that ulp (and move an eps only if it also sits on a
4-significant-digit boundary).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn.neighbors import NearestNeighbors

from apg.search.kernels import as_float_matrix
from apg.search.neighbors import _Scan

_EPS_SIGNIFICANT_DIGITS = 4


def kdistance_eps_grid(
    X: np.ndarray,
    min_samples: Sequence[int],
    quantiles: Sequence[float],
) -> dict[int, list[float]]:
    """Candidate eps values per ``min_samples`` from the k-distance curve.

    For each m, the k-distance of a sample is its distance to its m-th
    nearest neighbour counting itself, so a sample is a DBSCAN core sample
    iff its k-distance <= eps. The eps for quantile q is the smallest
    k-distance with at least a share q of samples at or below it, rounded
    *up* to 4 significant digits so that share survives the rounding.
    Values are deduplicated, sorted and positive (zero-distance quantiles,
    from duplicated points, are dropped).
    """
    X = as_float_matrix(X)
    ms = [int(m) for m in min_samples]
    if not ms:
        return {}
    if min(ms) < 1 or max(ms) > X.shape[0]:
        raise ValueError(f"min_samples must be in [1, {X.shape[0]}], got {ms}")
    qs = np.asarray(quantiles, dtype=np.float64)
    if np.any((qs <= 0) | (qs > 1)):
        raise ValueError(f"quantiles must be in (0, 1], got {list(quantiles)}")
    nn = NearestNeighbors(n_neighbors=max(ms)).fit(X)
    if nn._fit_method == "kd_tree":
        dist = np.sqrt(_Scan(X).kth_rdists(list(range(1, max(ms) + 1))))
    else:
        # Passing X to kneighbors keeps each sample as its own neighbour.
        dist, _ = nn.kneighbors(X)
    grid: dict[int, list[float]] = {}
    for m in ms:
        values = np.quantile(dist[:, m - 1], qs, method="inverted_cdf")
        rounded = {_ceil_significant(float(v)) for v in values if v > 0}
        grid[m] = sorted(rounded)
    return grid


def estimated_pairs(
    X: np.ndarray, eps_values: Sequence[float], sample_rows: int = 512, seed: int = 0
) -> np.ndarray:
    """About how many (row, neighbour) pairs lie within each eps over every row: the counts
    of a seeded sample of rows, scaled to all. What the neighbour pass will hold in memory."""
    X = as_float_matrix(X)
    n = X.shape[0]
    take = min(n, sample_rows)
    rows = np.sort(np.random.default_rng(seed).choice(n, take, replace=False))
    sq = np.einsum("ij,ij->i", X, X)
    thresholds = np.square(np.asarray(eps_values, dtype=np.float64))
    counts = np.zeros(len(thresholds))
    for c0 in range(0, take, 64):
        picked = rows[c0 : c0 + 64]
        block = sq[picked, None] - 2.0 * (X[picked] @ X.T) + sq[None, :]
        counts += np.searchsorted(np.sort(block.ravel()), thresholds, side="right")
    return counts * (n / take)


def _ceil_significant(value: float, digits: int = _EPS_SIGNIFICANT_DIGITS) -> float:
    exponent = math.floor(math.log10(value)) - digits + 1
    mantissa = math.ceil(value / 10.0**exponent)
    # Going through the decimal string gives the double nearest the short
    # decimal, which may still fall an ulp below value; step up if so.
    result = float(f"{mantissa}e{exponent}")
    while result < value:
        mantissa += 1
        result = float(f"{mantissa}e{exponent}")
    return result
