"""Silhouette scores of many labelings in one chunked pass over the data.

The naive way scores each candidate with ``silhouette_score``, which computes all n^2
distances again every time. Here every chunk of rows gets its distances to all samples once,
and one matrix product with the membership columns of every candidate's clusters, side by
side, gives each sample's distance sum to every cluster of every candidate.

The product's cost is proportional to the number of membership columns, so columns are
shared where the arithmetic allows it:

* a cluster that appears in several labelings (tree cuts at k and k+1 share all but one
  cluster; DBSCAN settings often share clusters) is one column;
* in a labeling without noise the sums to its largest cluster are the row sum minus the
  sums to the others, so that cluster needs no column (the row sum is one shared column).

No n x n matrix is kept: a chunk is about 32 MiB, and two threads each work on their own
chunk (BLAS limited to one thread each, so the pool does not oversubscribe the cores).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from apg.search.kernels import as_float_matrix

# Keeps each thread's chunk x n distance block near 32 MiB.
_CHUNK_BYTES = 32 * 2**20
_DERIVED = -1  # the cluster whose sums are the row sum minus the others'


@dataclass
class _Labeling:
    valid: np.ndarray  # bool per sample: not noise
    codes: np.ndarray  # cluster code per sample, -1 for noise
    columns: np.ndarray  # membership column of each cluster, _DERIVED for the derived one
    freqs: np.ndarray  # cluster sizes (float64)


def _plan(
    labelings: Sequence[np.ndarray], n: int
) -> tuple[list[_Labeling | None], list[np.ndarray], bool]:
    """Each scorable labeling's columns, the distinct member sets, and whether any labeling
    derives a cluster from the row sum (column 0 is then the all-samples column)."""
    plans: list[_Labeling | None] = []
    members: list[np.ndarray] = []
    index: dict[bytes, int] = {}
    derives = False
    for raw in labelings:
        raw = np.asarray(raw)
        if raw.shape != (n,):
            raise ValueError(f"labels must have shape ({n},), got {raw.shape}")
        valid = raw >= 0
        clusters, inverse = np.unique(raw[valid], return_inverse=True)
        n_valid = int(valid.sum())
        if not 2 <= clusters.size <= n_valid - 1:
            plans.append(None)
            continue
        codes = np.full(n, -1, dtype=np.intp)
        codes[valid] = inverse
        freqs = np.bincount(inverse, minlength=clusters.size).astype(np.float64)
        derived = int(np.argmax(freqs)) if n_valid == n else None
        derives = derives or derived is not None
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(clusters.size + 1))
        columns = np.empty(clusters.size, dtype=np.intp)
        for c in range(clusters.size):
            if c == derived:
                columns[c] = _DERIVED
                continue
            rows = np.sort(order[bounds[c] : bounds[c + 1]])
            key = rows.tobytes()
            if key not in index:
                index[key] = len(members)
                members.append(rows)
            columns[c] = index[key]
        plans.append(_Labeling(valid, codes, columns, freqs))
    return plans, members, derives


def silhouette_many(
    X: np.ndarray,
    labelings: Sequence[np.ndarray],
    chunk_rows: int | None = None,
    threads: int | None = None,
) -> list[float]:
    """Silhouette score of every labeling, in one chunked pass over X.

    Negative labels mark noise, excluded both as samples and as cluster members, so each
    score equals ``silhouette_score(X[labels >= 0], labels[labels >= 0])`` to rounding
    (the tests hold it to 1e-6). Samples in singleton clusters score 0, as in sklearn.
    Where sklearn would raise, that is unless 2 <= clusters <= non-noise samples - 1, the
    score is nan.
    """
    X = as_float_matrix(X)
    n = X.shape[0]
    if chunk_rows is None:
        chunk_rows = max(1, _CHUNK_BYTES // (8 * max(n, 1)))
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    plans, members, derives = _plan(labelings, n)
    if not members and not derives:
        return [math.nan if p is None else 0.0 for p in plans]

    offset = 1 if derives else 0
    membership = np.zeros((n, offset + len(members)), dtype=np.float64)
    if derives:
        membership[:, 0] = 1.0
    for j, rows in enumerate(members):
        membership[rows, offset + j] = 1.0
    # Silhouettes do not change under translation; centring shrinks the squared norms, and
    # with them the cancellation error of |x|^2 + |y|^2 - 2 x.y.
    Xc = X - X.mean(axis=0)
    sq = np.einsum("ij,ij->i", Xc, Xc)
    # One product gives squared distances: [x, |x|^2, 1] . [-2y, 1, |y|^2].
    left = np.hstack([Xc, sq[:, None], np.ones((n, 1))])
    right = np.ascontiguousarray(np.hstack([-2.0 * Xc, np.ones((n, 1)), sq[:, None]]).T)

    def chunk(start: int) -> np.ndarray:
        stop = min(start + chunk_rows, n)
        dist = left[start:stop] @ right
        np.maximum(dist, 0.0, out=dist)
        np.sqrt(dist, out=dist)
        # As sklearn does when X is Y: a sample's distance to itself is exactly 0.
        local = np.arange(stop - start)
        dist[local, local + start] = 0.0
        sums = dist @ membership
        del dist
        return np.array([_chunk_sum(p, sums, start, stop, offset) for p in plans])

    starts = range(0, n, chunk_rows)
    workers = max(1, min(threads or os.cpu_count() or 1, len(starts)))
    with threadpool_limits(limits=1), ThreadPoolExecutor(max_workers=workers) as pool:
        partial = list(pool.map(chunk, starts))
    # Summed in chunk order, so the result does not depend on thread timing.
    totals = np.sum(partial, axis=0)
    return [
        math.nan if p is None else float(total / int(p.valid.sum()))
        for p, total in zip(plans, totals, strict=True)
    ]


def _chunk_sum(p: _Labeling | None, sums: np.ndarray, start: int, stop: int, off: int) -> float:
    if p is None:
        return 0.0
    own = p.codes[start:stop]
    keep = own >= 0
    if not keep.any():
        return 0.0
    kept = sums[keep]
    cluster_sums = np.empty((kept.shape[0], p.columns.size), dtype=np.float64)
    explicit = p.columns != _DERIVED
    cluster_sums[:, explicit] = kept[:, off + p.columns[explicit]]
    if not explicit.all():
        cluster_sums[:, ~explicit] = kept[:, :1] - cluster_sums[:, explicit].sum(
            axis=1, keepdims=True
        )
    return _silhouette_sum(cluster_sums, own[keep], p.freqs)


def _silhouette_sum(cluster_sums: np.ndarray, own: np.ndarray, freqs: np.ndarray) -> float:
    """Sum of the silhouette values of some samples, following sklearn's formulas."""
    rows = np.arange(own.size)
    with np.errstate(divide="ignore", invalid="ignore"):
        intra = cluster_sums[rows, own] / (freqs[own] - 1)
        means = cluster_sums / freqs
        means[rows, own] = np.inf
        inter = means.min(axis=1)
        values = (inter - intra) / np.maximum(intra, inter)
    # sklearn maps the 0/0 of singleton clusters (and of all-zero distances) to 0.
    return float(np.nan_to_num(values).sum())
