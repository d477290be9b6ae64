"""Shared-work kernels for the clustering search.

The search fits and scores about sixty candidates. Done one by one, each
candidate pays an O(n^2) distance computation. These kernels compute the
expensive part once and derive every candidate from it, while returning
exactly what scikit-learn would return for each candidate on its own:

* :func:`hierarchical_labels` builds one tree per linkage from one shared
  condensed distance matrix and cuts it at every k, labelling clusters like
  ``AgglomerativeClustering``.

DBSCAN's shared neighbourhoods are in :mod:`apg.search.neighbors`, the one-pass silhouettes in
:mod:`apg.search.silhouettes`.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import fastcluster
import numpy as np
from scipy.cluster.hierarchy import leaves_list
from scipy.spatial.distance import pdist

# AgglomerativeClustering builds these three with scipy's ``linkage`` on
# euclidean pdist; fastcluster on the same pdist reproduces its trees.
# 'single' is left out: sklearn builds it with its own MST code, whose
# tie-breaking may differ from scipy's.
LINKAGES: tuple[str, ...] = ("ward", "average", "complete")


def as_float_matrix(X: np.ndarray) -> np.ndarray:
    """X as a 2-d float64 array, or a ValueError naming its shape."""
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
    sklearn uses) row for row when no two merge distances tie exactly, in less time; among
    exactly tied merges (rounded or duplicated values) its order can differ from scipy's, and
    so can a cut (docs/scale.md). It works in place on the condensed distance matrix, so each
    tree gets a fresh ``pdist(X)`` and memory peaks at one condensed matrix (4n² bytes: 400 MB
    at n=10,000). A given ``condensed`` (which must be ``pdist(X)``) is left intact: each tree
    then works on a copy of it.
    """
    X = as_float_matrix(X)
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
