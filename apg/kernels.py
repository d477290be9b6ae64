"""Shared-work kernels for the clustering search.

The search fits and scores about sixty candidates. Done one by one, each
candidate pays an O(n^2) distance computation. These kernels compute the
expensive part once and derive every candidate from it, while returning
exactly what scikit-learn would return for each candidate on its own:

* :func:`hierarchical_labels` builds one tree per linkage from one shared
  condensed distance matrix and cuts it at every k, labelling clusters like
  ``AgglomerativeClustering``.
* :class:`DbscanNeighbors` runs one radius query at the largest eps and
  answers ``DBSCAN`` for any smaller eps and any ``min_samples``.
* :func:`kdistance_eps_grid` proposes eps values from one k-neighbours query.
* :func:`silhouette_many` scores many labelings in one chunked pass.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence

import fastcluster
import numpy as np
from scipy.cluster.hierarchy import leaves_list
from scipy.spatial.distance import pdist
from sklearn.metrics.pairwise import euclidean_distances
from sklearn.neighbors import NearestNeighbors

# AgglomerativeClustering builds these three with scipy's ``linkage`` on
# euclidean pdist; fastcluster on the same pdist reproduces its trees.
# 'single' is left out: sklearn builds it with its own MST code, whose
# tie-breaking may differ from scipy's.
LINKAGES: tuple[str, ...] = ("ward", "average", "complete")

# Keeps the chunk x n distance block of silhouette_many near 64 MiB.
_CHUNK_BYTES = 64 * 2**20

_EPS_SIGNIFICANT_DIGITS = 4


def _as_float_matrix(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-dimensional, got shape {X.shape}")
    return X


# --------------------------------------------------------------------------
# Hierarchical clustering


def linkage_matrices(
    X: np.ndarray,
    linkages: Sequence[str],
    condensed: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Return the linkage matrix Z (scipy's format) for each linkage method.

    Trees come from fastcluster's C++ core, whose output equals scipy's ``linkage`` (which
    sklearn uses) row for row, ties included, in less time. It works in place on the
    condensed distance matrix, so each tree gets a fresh ``pdist(X)`` and memory peaks at one
    condensed matrix (1.6 GB at n=20,000). A given ``condensed`` (which must be ``pdist(X)``)
    is left intact: each tree then works on a copy of it.
    """
    X = _as_float_matrix(X)
    n = X.shape[0]
    if n < 2:
        raise ValueError("hierarchical clustering needs at least 2 samples")
    unknown = [m for m in linkages if m not in LINKAGES]
    if unknown:
        raise ValueError(f"unsupported linkage(s) {unknown}; use {LINKAGES}")
    if condensed is not None and condensed.shape != (n * (n - 1) // 2,):
        raise ValueError("condensed must be pdist(X)")
    trees = {}
    for method in linkages:
        distances = pdist(X) if condensed is None else condensed.copy()
        trees[method] = _linkage_in_place(distances, n, method)
        del distances
    return trees


def _linkage_in_place(distances: np.ndarray, n: int, method: str) -> np.ndarray:
    """fastcluster's core on ``distances`` (overwritten). ``fastcluster.linkage`` itself
    always copies its input first (``numpy.array`` defaults to copying), which doubled the
    peak memory; its C++ entry point does exactly the same work without the copy."""
    from _fastcluster import linkage_wrap  # fastcluster's compiled core

    Z = np.empty((n - 1, 4))
    linkage_wrap(
        n, np.ascontiguousarray(distances, dtype=np.float64), Z, fastcluster.mthidx[method]
    )
    return Z


def labels_from_linkage(Z: np.ndarray, ks: Sequence[int]) -> dict[int, np.ndarray]:
    """Cut a scipy linkage tree at each k the way sklearn's ``_hc_cut`` does.

    sklearn numbers clusters by their position in the internal list of a
    heap of negated node ids, so the same heap operations are replayed
    here; one replay up to max(ks) yields the heap for every smaller k.
    """
    n = Z.shape[0] + 1
    ks = [int(k) for k in ks]
    if not ks:
        return {}
    if min(ks) < 1 or max(ks) > n:
        raise ValueError(f"every k must be in [1, {n}], got {ks}")
    children = Z[:, :2].astype(np.intp)
    sizes = Z[:, 3].astype(np.intp)

    heap = [-(int(children[-1].max()) + 1)]
    snapshots = {1: list(heap)}
    # leaves_list puts the leaves of Z[i, 0] before those of Z[i, 1], so
    # every subtree is one block of it; a node's block starts at its
    # parent's start, plus the left sibling's size for a right child.
    # Only the k-1 largest node ids are ever split and parents have larger
    # ids than children, so this top-down pass places every heap node.
    order = leaves_list(Z)
    offset = {-heap[0]: 0}
    for k in range(2, max(ks) + 1):
        top = -heap[0]
        left, right = children[top - n]
        heapq.heappush(heap, -int(left))
        heapq.heappushpop(heap, -int(right))
        offset[int(left)] = offset[top]
        offset[int(right)] = offset[top] + _node_size(int(left), n, sizes)
        snapshots[k] = list(heap)

    result: dict[int, np.ndarray] = {}
    for k in ks:
        labels = np.empty(n, dtype=np.intp)
        for i, neg_node in enumerate(snapshots[k]):
            node = -neg_node
            start = offset[node]
            labels[order[start : start + _node_size(node, n, sizes)]] = i
        result[k] = labels
    return result


def _node_size(node: int, n: int, sizes: np.ndarray) -> int:
    return 1 if node < n else int(sizes[node - n])


def hierarchical_labels(
    X: np.ndarray,
    linkages: Sequence[str],
    ks: Sequence[int],
    condensed: np.ndarray | None = None,
) -> dict[tuple[str, int], np.ndarray]:
    """Labels of ``AgglomerativeClustering(n_clusters=k, linkage=m)``.

    Returns ``{(m, k): labels}`` for every linkage m and every k, identical
    (same integers) to sklearn's ``labels_``, from one tree per linkage.
    """
    trees = linkage_matrices(X, linkages, condensed)
    return {
        (method, k): labels
        for method, Z in trees.items()
        for k, labels in labels_from_linkage(Z, ks).items()
    }


# --------------------------------------------------------------------------
# DBSCAN


class DbscanNeighbors:
    """Radius neighbourhoods at ``max_eps``, reused for any smaller eps.

    Neighbours are kept as CSR-like flat arrays sorted by distance within
    each row, so the neighbourhood at eps is a prefix of each row.
    Membership is ``distance <= eps`` on the distances sklearn returns;
    sklearn's trees compare squared distances internally, so a pair whose
    distance equals eps to within one ulp could in theory be judged
    differently.
    """

    def __init__(self, X: np.ndarray, max_eps: float) -> None:
        X = _as_float_matrix(X)
        if not max_eps > 0:
            raise ValueError(f"max_eps must be > 0, got {max_eps}")
        self.max_eps = float(max_eps)
        self.n_samples = X.shape[0]
        # The same estimator DBSCAN builds internally (same algorithm choice
        # and therefore the same distances), only with a larger radius.
        nn = NearestNeighbors(radius=self.max_eps).fit(X)
        dist, ind = nn.radius_neighbors(X, return_distance=True, sort_results=True)
        lengths = np.fromiter((len(row) for row in ind), np.intp, self.n_samples)
        self.indptr = np.zeros(self.n_samples + 1, dtype=np.intp)
        np.cumsum(lengths, out=self.indptr[1:])
        self.indices = np.concatenate(ind).astype(np.intp, copy=False)
        self.distances = np.concatenate(dist).astype(np.float64, copy=False)

    def neighbor_counts(self, eps: float) -> np.ndarray:
        """Number of samples within ``eps`` of each sample, itself included."""
        self._check_eps(eps)
        within = np.zeros(self.distances.size + 1, dtype=np.intp)
        np.cumsum(self.distances <= eps, out=within[1:])
        return within[self.indptr[1:]] - within[self.indptr[:-1]]

    def core_sample_indices(self, eps: float, min_samples: int) -> np.ndarray:
        """``DBSCAN(eps, min_samples).fit(X).core_sample_indices_``."""
        return np.flatnonzero(self.neighbor_counts(eps) >= min_samples)

    def labels(self, eps: float, min_samples: int) -> np.ndarray:
        """``DBSCAN(eps=eps, min_samples=min_samples).fit(X).labels_``."""
        return self.fit(eps, min_samples)[0]

    def fit(self, eps: float, min_samples: int) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(labels_, core_sample_indices_)`` as DBSCAN would."""
        # Private, but it is the very loop DBSCAN runs: cluster numbering and
        # the assignment of border points reachable from two clusters follow
        # from it, so calling it is what guarantees identical labels.
        from sklearn.cluster._dbscan_inner import dbscan_inner

        counts = self.neighbor_counts(eps)
        is_core = np.ascontiguousarray(counts >= min_samples, dtype=np.uint8)
        core = np.flatnonzero(is_core)
        # dbscan_inner reads neighbourhoods of core samples only.
        neighborhoods = np.empty(self.n_samples, dtype=object)
        starts = self.indptr[core]
        ends = starts + counts[core]
        for i, start, end in zip(core.tolist(), starts.tolist(), ends.tolist(), strict=True):
            neighborhoods[i] = self.indices[start:end]
        labels = np.full(self.n_samples, -1, dtype=np.intp)
        dbscan_inner(is_core, neighborhoods, labels)
        return labels, core

    def _check_eps(self, eps: float) -> None:
        if not 0 < eps <= self.max_eps:
            raise ValueError(f"eps must be in (0, {self.max_eps}], got {eps}")


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
    X = _as_float_matrix(X)
    ms = [int(m) for m in min_samples]
    if not ms:
        return {}
    if min(ms) < 1 or max(ms) > X.shape[0]:
        raise ValueError(f"min_samples must be in [1, {X.shape[0]}], got {ms}")
    qs = np.asarray(quantiles, dtype=np.float64)
    if np.any((qs <= 0) | (qs > 1)):
        raise ValueError(f"quantiles must be in (0, 1], got {list(quantiles)}")
    # Passing X to kneighbors keeps each sample as its own neighbour.
    dist, _ = NearestNeighbors(n_neighbors=max(ms)).fit(X).kneighbors(X)
    grid: dict[int, list[float]] = {}
    for m in ms:
        values = np.quantile(dist[:, m - 1], qs, method="inverted_cdf")
        rounded = {_ceil_significant(float(v)) for v in values if v > 0}
        grid[m] = sorted(rounded)
    return grid


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


# --------------------------------------------------------------------------
# Silhouette


def silhouette_many(
    X: np.ndarray,
    labelings: Sequence[np.ndarray],
    chunk_rows: int | None = None,
) -> list[float]:
    """Silhouette score of every labeling, in one chunked pass over X.

    Negative labels mark noise, excluded both as samples and as cluster
    members, so each score equals
    ``silhouette_score(X[labels >= 0], labels[labels >= 0])``. Samples in
    singleton clusters score 0, as in sklearn. Where sklearn would raise,
    that is unless 2 <= number of clusters <= number of non-noise samples
    - 1 (so also with fewer than 3 non-noise samples), the score is nan.

    Each chunk of rows gets its distances to all samples once; a product
    with the one-hot membership of all labelings side by side then gives
    every sample's distance sum to every cluster of every labeling.
    """
    X = _as_float_matrix(X)
    n = X.shape[0]
    if chunk_rows is None:
        chunk_rows = max(1, _CHUNK_BYTES // (8 * max(n, 1)))
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")

    blocks: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []
    width = 0
    for raw in labelings:
        raw = np.asarray(raw)
        if raw.shape != (n,):
            raise ValueError(f"labels must have shape ({n},), got {raw.shape}")
        valid = raw >= 0
        clusters, codes = np.unique(raw[valid], return_inverse=True)
        n_valid = int(valid.sum())
        if not 2 <= clusters.size <= n_valid - 1:
            blocks.append((-1, valid, codes, np.empty(0)))
            continue
        blocks.append((width, valid, codes, np.bincount(codes).astype(np.float64)))
        width += clusters.size

    scores = [0.0 if block[0] >= 0 else math.nan for block in blocks]
    if width == 0:
        return scores

    membership = np.zeros((n, width), dtype=np.float64)
    # Per-sample code with -1 for noise, to slice by chunk below.
    sample_codes = []
    for offset, valid, codes, _ in blocks:
        full = np.full(n, -1, dtype=np.intp)
        if offset >= 0:
            full[valid] = codes
            rows = np.flatnonzero(valid)
            membership[rows, offset + codes] = 1.0
        sample_codes.append(full)

    sq_norms = np.einsum("ij,ij->i", X, X)
    for start in range(0, n, chunk_rows):
        stop = min(start + chunk_rows, n)
        dist = euclidean_distances(
            X[start:stop],
            X,
            X_norm_squared=sq_norms[start:stop, None],
            Y_norm_squared=sq_norms[None, :],
        )
        # As sklearn does when X is Y: a sample's distance to itself is 0.
        local = np.arange(stop - start)
        dist[local, local + start] = 0.0
        sums = dist @ membership
        del dist
        for j, (offset, _, _, freqs) in enumerate(blocks):
            if offset < 0:
                continue
            own = sample_codes[j][start:stop]
            keep = own >= 0
            if not keep.any():
                continue
            scores[j] += _chunk_silhouette_sum(
                sums[keep, offset : offset + freqs.size], own[keep], freqs
            )

    for j, (offset, valid, _, _) in enumerate(blocks):
        if offset >= 0:
            scores[j] /= int(valid.sum())
    return scores


def _chunk_silhouette_sum(cluster_sums: np.ndarray, own: np.ndarray, freqs: np.ndarray) -> float:
    """Sum of silhouette values of one chunk, following sklearn's formulas."""
    rows = np.arange(own.size)
    with np.errstate(divide="ignore", invalid="ignore"):
        intra = cluster_sums[rows, own] / (freqs[own] - 1)
        means = cluster_sums / freqs
        means[rows, own] = np.inf
        inter = means.min(axis=1)
        values = (inter - intra) / np.maximum(intra, inter)
    # sklearn maps the 0/0 of singleton clusters (and of all-zero
    # distances) to 0 with nan_to_num.
    return float(np.nan_to_num(values).sum())
