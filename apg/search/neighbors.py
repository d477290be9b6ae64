"""Neighbourhoods for the DBSCAN grid: every (eps, min_samples) from one pass over the pairs.

For euclidean data with at most 15 features and more than 11 rows, ``DBSCAN`` queries a
kd-tree, which keeps a pair when ``rdist <= eps * eps``, rdist being ``(x0 - y0)**2 +
(x1 - y1)**2 + ...`` summed in order in doubles, except that it keeps or skips a whole node
whose bounding box lies within or beyond eps. Here a BLAS product with a proven error margin
finds the pairs, rdist is recomputed the kd-tree's way where the margin leaves doubt, and the
kd-tree's own walk is replayed (same boxes, arithmetic and libm ``pow``) for the few pairs
within rounding of an eps: neighbourhoods, labels and core samples are exactly DBSCAN's.

The eps values themselves come from :mod:`apg.search.eps_grid`.

Without a kd-tree (over 15 features, tiny or sparse data), scikit-learn's ``radius_neighbors``
at the largest eps supplies the neighbours, and its own query at an eps settles the rare pairs
whose distance is within a few ulps of it (its brute force cannot be reproduced).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from sklearn.neighbors import KDTree, NearestNeighbors

from apg.search.kernels import as_float_matrix

# Rows per chunk and columns per boxed block: a chunk and a block whose bounding boxes are
# farther apart than the radius are skipped (half the pairs on the benchmark data); 64 rows
# measured best of 32..256, though within the noise of 32..128.
_CHUNK_ROWS = 64
_BLOCK = 256
# Bins of the table that maps an approximate squared distance to its eps bucket.
_TABLE_BINS = 1 << 16
_UNIT_ROUNDOFF = 2.0**-53
# Slack on the box test, far above the rounding of the rotation (about 1e-15 relative).
_BOX_SLACK = 1e-7


def _margin(n_features: int, max_sq_norms: float, max_rdist: float) -> float:
    """Bound on |approximate - kd-tree| squared distance (norms of the centred rows), plus
    room for the pairs the kd-tree's box tests could decide (see _risk). With unit roundoff u
    and d features: centring moves a squared distance by up to 4u(|x|^2 + |y|^2); the norms
    carry d u |x|^2; the product, in any order of its d + 2 terms (FMA or not), (d + 2) u of
    its absolute terms, at most 2(|x|^2 + |y|^2); the kd-tree's sum (d + 3) u of the exact."""
    u = _UNIT_ROUNDOFF
    return 4 * u * (3 * n_features + 8) * max_sq_norms + 2 * _risk(n_features, max_rdist)


def _risk(n_features: int, rdist: float | np.ndarray) -> float | np.ndarray:
    """How near eps * eps an ``rdist`` must be for the kd-tree's box tests (about (d + 4) u of
    rounding) to possibly decide its pair otherwise than ``rdist <= eps * eps``; ample."""
    return 8 * (n_features + 4) * _UNIT_ROUNDOFF * rdist + 1e-300


def _kdtree_rdist(Xt: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The kd-tree's squared distance, one rounding per operation, feature by feature (a
    numpy ``sum`` adds pairwise and rounds differently)."""
    acc = Xt[0, rows] - Xt[0, cols]
    acc *= acc
    for k in range(1, Xt.shape[0]):
        diff = Xt[k, rows] - Xt[k, cols]
        diff *= diff
        acc += diff
    return acc


class _Scan:
    """Blocked pass over all pairs of rows, in kd-tree order on the two leading principal axes
    (compact chunks, bounding boxes in principal coordinates). Chunks are positions in that
    order; the columns returned are original row numbers."""

    def __init__(self, X: np.ndarray) -> None:
        self.n, self.d = X.shape
        centred = X - X.mean(axis=0)
        rotated = centred @ np.linalg.svd(centred, full_matrices=False)[2].T
        self.perm = KDTree(rotated[:, :2], leaf_size=16).get_arrays()[1].astype(np.intp)
        centred, self.rotated = centred[self.perm], rotated[self.perm]
        self.Xt = np.ascontiguousarray(X.T)
        self.sq = np.einsum("ij,ij->i", centred, centred)
        self.max_sq = float(self.sq.max())
        # One product gives the approximate squared distance: [-2x, |x|^2, 1] . [y, 1, |y|^2].
        ones = np.ones((self.n, 1))
        self.left = np.hstack([-2.0 * centred, self.sq[:, None], ones])
        self.right = np.ascontiguousarray(np.hstack([centred, ones, self.sq[:, None]]).T)
        starts = np.arange(0, self.n, _BLOCK)
        self.block_sq = np.maximum.reduceat(self.sq, starts)
        self.box_lo = np.minimum.reduceat(self.rotated, starts, axis=0)
        self.box_hi = np.maximum.reduceat(self.rotated, starts, axis=0)
        largest = float(np.einsum("ij,ij->i", self.rotated, self.rotated).max())
        self.box_slack = _BOX_SLACK * (1.0 + math.sqrt(largest))

    def chunks(self) -> list[tuple[int, int]]:
        return [(r0, min(r0 + _CHUNK_ROWS, self.n)) for r0 in range(0, self.n, _CHUNK_ROWS)]

    def candidates(
        self, r0: int, r1: int, limit: float | np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(position in the chunk, column, approximate squared distance) of the pairs of chunk
        r0:r1 whose kd-tree squared distance may be <= ``limit`` (scalar or one per row), or
        near enough for the box tests to matter."""
        reach = max(float(np.max(limit)), 0.0)
        radius = math.sqrt(reach + _margin(self.d, 2 * self.max_sq, reach)) + self.box_slack
        row_sq = float(self.sq[r0:r1].max())
        lo, hi = self.rotated[r0:r1].min(axis=0), self.rotated[r0:r1].max(axis=0)
        gap = np.maximum(np.maximum(self.box_lo - hi, lo - self.box_hi), 0.0)
        near = np.flatnonzero(np.sqrt(np.square(gap).sum(axis=1)) <= radius)
        limit = limit[:, None] if isinstance(limit, np.ndarray) else limit
        rows, cols, vals = [], [], []
        # Adjacent blocks make one product.
        for run in np.split(near, np.flatnonzero(np.diff(near) > 1) + 1):
            c0, c1 = int(run[0]) * _BLOCK, min(int(run[-1] + 1) * _BLOCK, self.n)
            block = self.left[r0:r1] @ self.right[:, c0:c1]
            # The margin of these rows and columns only: one far outlier must not widen all.
            margin = _margin(self.d, row_sq + float(self.block_sq[run].max()), reach)
            flat = np.flatnonzero(block <= limit + margin)
            vals.append(block.ravel().take(flat))
            chunk_rows, block_cols = np.divmod(flat, c1 - c0)
            rows.append(chunk_rows)
            cols.append(self.perm[c0:c1].take(block_cols))
        return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)

    def kth_rdists(self, ks: list[int]) -> np.ndarray:
        """For each row and k in ``ks``, the k-th smallest kd-tree squared distance."""
        k_max, width = max(ks), max(3 * _BLOCK, max(ks))
        out = np.empty((self.n, len(ks)))
        for r0, r1 in self.chunks():
            # The k-th nearest among the surrounding rows (near in space too) bounds the k-th
            # neighbour closely (1.1x on the benchmark data), so few pairs pass the bound.
            w0 = max(0, min(r0 + (_CHUNK_ROWS - width) // 2, self.n - width))
            window = self.left[r0:r1] @ self.right[:, w0 : w0 + width]
            bound = np.partition(window, k_max - 1, axis=1)[:, k_max - 1]
            # k rows lie within the bound and a margin: so does the k-th neighbour.
            sq = float(self.sq[r0:r1].max() + self.sq[w0 : w0 + width].max())
            rows, cols, _ = self.candidates(r0, r1, bound + _margin(self.d, sq, bound.max()))
            exact = _kdtree_rdist(self.Xt, self.perm[r0:r1].take(rows), cols)
            order = np.argsort(exact)
            order = order[np.argsort(rows[order], kind="stable")]
            counts = np.bincount(rows, minlength=r1 - r0)
            first = np.cumsum(counts) - counts
            out[self.perm[r0:r1]] = exact[order[first[:, None] + np.asarray(ks) - 1]]
        return out


def _tree_keeps(tree: KDTree, pt: list[float], position: int, rdist: float, r: float) -> bool:
    """Whether scikit-learn's kd-tree query of radius r around ``pt`` keeps the point at
    ``position`` of its index array: ``_query_radius_single``'s walk with its arithmetic."""
    _, _, nodes, bounds = tree.get_arrays()
    node = 0
    while True:
        low = high = 0.0
        for j, x in enumerate(pt):
            d_lo = float(bounds[0, node, j]) - x
            d_hi = x - float(bounds[1, node, j])
            d = (d_lo + abs(d_lo)) + (d_hi + abs(d_hi))
            low += math.pow(0.5 * d, 2.0)
            high += math.pow(max(abs(d_lo), abs(d_hi)), 2.0)
        if math.pow(low, 0.5) > r:
            return False
        if math.pow(high, 0.5) <= r:
            return True
        if nodes[node]["is_leaf"]:
            return rdist <= r * r
        node = 2 * node + 1 if position < nodes[2 * node + 1]["idx_end"] else 2 * node + 2


def _exact_buckets(
    X: np.ndarray, eps: list[float], tree: KDTree
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """(row starts, neighbours ordered by bucket within each row, per-row count of each
    bucket, whether the relation is symmetric) within eps[-1], as the kd-tree decides."""
    scan = _Scan(X)
    thresholds = np.square(eps)
    n, n_buckets, top = scan.n, len(eps), float(thresholds[-1])
    margin = _margin(scan.d, 2 * scan.max_sq, top)
    # The bucket of each bin of approximate values over [-margin, top + 2 margin], or -1 when
    # the bin, widened by a bin each side (rounding of the index) and a margin, straddles a
    # threshold. Candidates are never below -margin: truncating the index is flooring.
    width = (top + 3 * margin) / _TABLE_BINS
    edges = width * np.arange(-1, _TABLE_BINS + 4) - margin
    lo = np.searchsorted(thresholds, edges[:-3] - margin)
    table = np.where(lo == np.searchsorted(thresholds, edges[3:] + margin), lo, -1)
    table = table.astype(np.int8 if n_buckets < 127 else np.int16)
    key_type = np.int16 if _CHUNK_ROWS * n_buckets < 2**15 else np.int32
    positions = np.empty(n, dtype=np.intp)
    positions[tree.get_arrays()[1]] = np.arange(n)

    counts = np.empty((n, n_buckets), dtype=np.intp)
    pieces, replayed = [], []
    for r0, r1 in scan.chunks():
        rows, cols, vals = scan.candidates(r0, r1, top)
        vals += margin
        vals *= 1.0 / width
        buckets = table[vals.astype(np.intp)]
        doubt = np.flatnonzero(buckets < 0)
        queries = scan.perm[r0:r1].take(rows[doubt])
        exact = _kdtree_rdist(scan.Xt, queries, cols[doubt])
        buckets[doubt] = np.searchsorted(thresholds, exact)
        risky = np.abs(exact[:, None] - thresholds) <= _risk(scan.d, thresholds)
        for a in np.flatnonzero(risky.any(axis=1)):
            i, k = int(queries[a]), int(cols[doubt[a]])
            keeps = [
                _tree_keeps(tree, X[i].tolist(), positions[k], exact[a], e) if risk else e_sq
                for e, risk, e_sq in zip(eps, risky[a], exact[a] <= thresholds, strict=True)
            ]
            buckets[doubt[a]] = keeps.index(True) if True in keeps else n_buckets
            replayed.append((i, k, int(buckets[doubt[a]])))
        inside = buckets < n_buckets
        if not inside.all():
            rows, cols, buckets = rows[inside], cols[inside], buckets[inside]
        keys = rows.astype(key_type) * key_type(n_buckets) + buckets
        # Stable sort of 16-bit keys: a radix sort.
        pieces.append(cols[np.argsort(keys, kind="stable")].astype(np.int32))
        chunk_counts = np.bincount(keys, minlength=(r1 - r0) * n_buckets)
        counts[scan.perm[r0:r1]] = chunk_counts.reshape(r1 - r0, n_buckets)
    lengths = counts.sum(axis=1)[scan.perm]
    starts = np.empty(n, dtype=np.intp)
    starts[scan.perm] = np.cumsum(lengths) - lengths
    # rdist is symmetric; the box tests look from the query point, so a replayed pair may be
    # kept one way only.
    symmetric = sorted(replayed) == sorted((k, i, b) for i, k, b in replayed)
    return starts, np.concatenate(pieces), counts, symmetric


# Rows per radius query of the brute-force path: its neighbour lists (indices and distances,
# 16 bytes a pair, and the working copies below) live for one chunk, not for the whole table.
# 8,950 users x 17 features: 2.4 GB peak for one query of every row, 0.5 GB in chunks.
_QUERY_ROWS = 256


def _sklearn_buckets(
    nn: NearestNeighbors, X: np.ndarray, eps: list[float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same layout from scikit-learn's own radius queries at the largest eps, a chunk of
    rows at a time. A pair whose distance is within a few ulps of an eps may come out on
    either side (a chunk's products need not be DBSCAN's bit for bit), so the query at that
    eps over every row, which is DBSCAN's own call, decides it; chunks query a hair beyond
    the largest eps so that no such pair is missed."""
    n, n_buckets = X.shape[0], len(eps)
    tolerance = 8 * float(np.spacing(eps[-1]))
    reach = eps[-1] + 2 * tolerance
    pieces: list[np.ndarray] = []
    counts = np.zeros((n, n_buckets + 1), dtype=np.intp)
    doubts: list[tuple[int, int, float]] = []  # (row, neighbour, distance)
    for r0 in range(0, n, _QUERY_ROWS):
        r1 = min(r0 + _QUERY_ROWS, n)
        dist, ind = nn.radius_neighbors(X[r0:r1], radius=reach, sort_results=True)
        lengths = np.fromiter((len(row) for row in ind), np.intp, r1 - r0)
        indices = np.concatenate(ind).astype(np.intp)
        distances = np.concatenate(dist)
        del dist, ind
        rows = np.repeat(np.arange(r0, r1), lengths)
        buckets = np.searchsorted(eps, distances)  # n_buckets: beyond every eps
        lo = np.searchsorted(eps, distances - tolerance)
        hi = np.searchsorted(eps, distances + tolerance, side="right")
        for a in np.flatnonzero(lo < hi):
            doubts.append((int(rows[a]), int(indices[a]), float(distances[a])))
        order = np.argsort(rows * (n_buckets + 1) + buckets, kind="stable")
        pieces.append(indices[order].astype(np.int32))
        counts[r0:r1] = np.bincount(
            (rows - r0) * (n_buckets + 1) + buckets, minlength=(r1 - r0) * (n_buckets + 1)
        ).reshape(r1 - r0, n_buckets + 1)
    indices = np.concatenate(pieces)
    del pieces
    lengths = counts.sum(axis=1)
    starts = np.cumsum(lengths) - lengths
    if doubts:
        _settle(nn, X, eps, indices, starts, counts, doubts, tolerance)
    # Each row ends with the few neighbours beyond the largest eps (bucket n_buckets): the
    # neighbourhoods are prefixes, so they are never read and need no copy to remove.
    return starts, indices, counts[:, :n_buckets]


def _settle(
    nn: NearestNeighbors,
    X: np.ndarray,
    eps: list[float],
    indices: np.ndarray,
    starts: np.ndarray,
    counts: np.ndarray,
    doubts: list[tuple[int, int, float]],
    tolerance: float,
) -> None:
    """Move each doubtful pair to the bucket DBSCAN's own query at each nearby eps puts it
    in (``n_buckets``: none), keeping every row's neighbours ordered by bucket."""
    n_buckets = len(eps)
    decided: dict[tuple[int, int], int] = {}
    near: dict[int, list[tuple[int, int]]] = {}
    for row, col, d in doubts:
        lo = int(np.searchsorted(eps, d - tolerance))
        hi = int(np.searchsorted(eps, d + tolerance, side="right"))
        for j in range(lo, hi):
            near.setdefault(j, []).append((row, col))
        # Outside the doubtful eps the distance decides: the first eps above d + tolerance.
        decided[row, col] = hi if hi < n_buckets and eps[hi] >= d + tolerance else n_buckets
    for j in sorted(near):
        members = nn.radius_neighbors(X, radius=eps[j], return_distance=False)
        for row, col in near[j]:
            if col in members[row]:
                decided[row, col] = min(decided[row, col], j)
        del members
    by_row: dict[int, list[tuple[int, int]]] = {}
    for (row, col), bucket in decided.items():
        by_row.setdefault(row, []).append((col, bucket))
    for row, moves in by_row.items():
        lo, end = starts[row], starts[row] + counts[row].sum()
        bucket_of = np.repeat(np.arange(n_buckets + 1), counts[row])
        cols = indices[lo:end].copy()
        for col, bucket in moves:
            bucket_of[int(np.flatnonzero(cols == col)[0])] = bucket
        order = np.argsort(bucket_of, kind="stable")
        indices[lo:end] = cols[order]
        counts[row] = np.bincount(bucket_of, minlength=n_buckets + 1)


class _Level(NamedTuple):
    """What a fit leaves for the next fit of the same min_samples at a larger eps."""

    bucket: int
    core: np.ndarray  # bool per sample
    part: np.ndarray  # component id per core sample, -1 elsewhere


class DbscanNeighbors:
    """Radius neighbourhoods at every eps of a grid, answering ``DBSCAN`` for each.

    Each row's neighbours are grouped by bucket, bucket j holding those within
    ``eps_values[j]`` but not within the previous eps, so the neighbourhood at any eps of the
    grid is a prefix of the row. ``eps_values`` must list every eps that will be asked about.
    """

    def __init__(self, X: np.ndarray, eps_values: Sequence[float]) -> None:
        eps = sorted({float(e) for e in eps_values})
        if not eps or not all(0 < e < math.inf for e in eps):
            raise ValueError(f"eps_values must be positive and finite, got {list(eps_values)}")
        self.eps_values: tuple[float, ...] = tuple(eps)
        X = X if sparse.issparse(X) else as_float_matrix(X)
        self.n_samples = X.shape[0]
        # The estimator DBSCAN builds, with the largest radius: its choice of algorithm
        # decides how DBSCAN measures.
        nn = NearestNeighbors(radius=eps[-1]).fit(X)
        if nn._fit_method == "kd_tree":
            self._starts, self.indices, counts, self._symmetric = _exact_buckets(X, eps, nn._tree)
        else:
            # Brute-force neighbourhoods need not be symmetric.
            self._starts, self.indices, counts = _sklearn_buckets(nn, X, eps)
            self._symmetric = False
        # _ends[i, j]: end in ``indices`` of row i's neighbourhood at eps_values[j].
        self._ends = self._starts[:, None] + np.cumsum(counts, axis=1)
        self._levels: dict[int, _Level] = {}

    def neighbor_counts(self, eps: float) -> np.ndarray:
        """Number of samples within ``eps`` of each sample, itself included."""
        return self._ends[:, self._bucket(eps)] - self._starts

    def core_sample_indices(self, eps: float, min_samples: int) -> np.ndarray:
        """``DBSCAN(eps, min_samples).fit(X).core_sample_indices_``."""
        return np.flatnonzero(self.neighbor_counts(eps) >= min_samples)

    def labels(self, eps: float, min_samples: int) -> np.ndarray:
        """``DBSCAN(eps=eps, min_samples=min_samples).fit(X).labels_``."""
        return self.fit(eps, min_samples)[0]

    def fit(self, eps: float, min_samples: int) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(labels_, core_sample_indices_)`` as DBSCAN would.

        DBSCAN's loop grows a cluster from each unlabelled core sample in index order: with
        symmetric neighbourhoods, clusters are the components of core samples within eps of
        each other, numbered by their smallest sample, and a non-core sample within eps of
        some joins the one reached first, the smallest label. Components grow from the last
        fit of this min_samples at a smaller eps (the search asks in increasing eps).
        Asymmetric neighbourhoods (see the module docstring) go through DBSCAN's own loop.
        """
        bucket = self._bucket(eps)
        core = self.neighbor_counts(eps) >= min_samples
        if not self._symmetric:
            return self._dbscan_inner(bucket, core), np.flatnonzero(core)
        previous = self._levels.get(min_samples)
        if previous is None or previous.bucket > bucket:
            part = self._components(bucket, core)
        elif previous.bucket < bucket:
            part = self._grow_components(previous, bucket, core)
        else:
            part = previous.part
        self._levels[min_samples] = _Level(bucket, core, part)
        return self._label(bucket, core, part), np.flatnonzero(core)

    def _bucket(self, eps: float) -> int:
        if float(eps) not in self.eps_values:
            raise ValueError(
                f"eps={eps} is not among the eps_values given: {list(self.eps_values)}"
            )
        return self.eps_values.index(float(eps))

    def _dbscan_inner(self, bucket: int, core: np.ndarray) -> np.ndarray:
        # Private, but it is the very loop DBSCAN runs; here on views of the prefixes.
        from sklearn.cluster._dbscan_inner import dbscan_inner

        rows = np.flatnonzero(core)
        neighborhoods = np.empty(self.n_samples, dtype=object)
        # Indices are kept as 32-bit (half the memory of every pair); dbscan_inner reads
        # intp, so each core row's neighbourhood is widened for this fit only.
        for i, s, e in zip(rows, self._starts[rows], self._ends[rows, bucket], strict=True):
            neighborhoods[i] = self.indices[s:e].astype(np.intp)
        labels = np.full(self.n_samples, -1, dtype=np.intp)
        dbscan_inner(np.ascontiguousarray(core, dtype=np.uint8), neighborhoods, labels)
        return labels

    def _components(self, bucket: int, core: np.ndarray) -> np.ndarray:
        """Component id of each core sample at ``bucket``, -1 for the others."""
        rows = np.flatnonzero(core)
        lengths, dst = self._gather(rows, self._starts[rows], bucket)
        n = self.n_samples
        indptr = np.zeros(n + 1, dtype=np.intp)
        indptr[rows + 1] = lengths
        graph = sparse.csr_matrix((np.ones(dst.size), dst, np.cumsum(indptr)), shape=(n, n))
        # Only core rows have edges and core-core edges go both ways: strong components are
        # the clusters (a non-core sample is one of its own), with no filter or transpose.
        return np.where(core, connected_components(graph, connection="strong")[1], -1)

    def _grow_components(self, previous: _Level, bucket: int, core: np.ndarray) -> np.ndarray:
        """Components at ``bucket`` from those at a smaller eps, joined by new-bucket edges
        between old components or by edges of new core samples: each has an end outside the
        largest old component, and rows hold edges both ways, so its rows are not read."""
        n = self.n_samples
        old = np.flatnonzero(previous.core)
        ids, members = np.unique(previous.part[old], return_inverse=True)
        major = np.zeros(n, dtype=bool)
        if ids.size:
            major[old[members == np.argmax(np.bincount(members))]] = True
        rows = np.flatnonzero(core & ~major)
        # Old core rows: only their new buckets; new core rows: everything.
        starts = np.where(
            previous.core[rows], self._ends[rows, previous.bucket], self._starts[rows]
        )
        lengths, dst = self._gather(rows, starts, bucket)
        keep = core[dst]
        # A row per sample, then a row per old component linking its members.
        sizes = [np.bincount(np.repeat(rows, lengths)[keep], minlength=n), np.bincount(members)]
        indptr = np.concatenate([[0], np.cumsum(np.concatenate(sizes))])
        indices = np.concatenate([dst[keep], old[np.argsort(members, kind="stable")]])
        size = indptr.size - 1
        graph = sparse.csr_matrix((np.ones(indices.size), indices, indptr), shape=(size, size))
        return np.where(core, connected_components(graph, connection="weak")[1][:n], -1)

    def _gather(
        self, rows: np.ndarray, starts: np.ndarray, bucket: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-row lengths, and the neighbours from ``starts`` to the end of ``bucket`` in each
        of ``rows``, one row after another."""
        lengths = self._ends[rows, bucket] - starts
        offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
        offsets += np.arange(offsets.size)
        return lengths, self.indices[offsets]

    def _label(self, bucket: int, core: np.ndarray, part: np.ndarray) -> np.ndarray:
        labels = np.full(self.n_samples, -1, dtype=np.intp)
        core_rows = np.flatnonzero(core)
        if core_rows.size == 0:
            return labels
        # Clusters numbered by their smallest core sample, as DBSCAN's scan meets them.
        ids, first = np.unique(part[core_rows], return_index=True)
        renumber = np.empty(int(ids[-1]) + 1, dtype=np.intp)
        renumber[ids[np.argsort(first)]] = np.arange(ids.size)
        labels[core_rows] = renumber[part[core_rows]]
        # A non-core sample has fewer than min_samples neighbours: reading them is cheap.
        border = np.flatnonzero(~core)
        lengths, dst = self._gather(border, self._starts[border], bucket)
        none = np.iinfo(np.intp).max
        best = np.full(self.n_samples, none, dtype=np.intp)
        np.minimum.at(best, np.repeat(border, lengths), np.where(core[dst], labels[dst], none))
        reached = border[best[border] < none]
        labels[reached] = best[reached]
        return labels
