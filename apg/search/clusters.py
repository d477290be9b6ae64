"""The fitted winner as a rule that assigns any user to a cluster.

K-Means: nearest centre. Agglomerative: nearest cluster centroid in the clustered space (a
tree has no rule for new points; the centroid is the rule K-Means users expect and costs O(k)
per user). DBSCAN: the nearest core sample if it lies within eps, else noise (-1), which is
how DBSCAN itself labels border points (``apg.search.core_rule``: a kd-tree query bounded by
eps).

Everything is arrays and numbers, so the model can be stored without pickle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from apg.search.core_rule import CoreRule

# Rows per assignment block: bounds the block x k distance matrix and the neighbour query.
CHUNK_ROWS = 65_536


@dataclass
class ClusterModel:
    kind: Literal["centroid", "core"]
    centers: np.ndarray  # (k, d) centroids, or (m, d) core samples for "core"
    labels: np.ndarray  # cluster label of each row of ``centers``
    eps: float | None = None

    @classmethod
    def from_fit(
        cls,
        algorithm: str,
        X: np.ndarray,
        labels: np.ndarray,
        centers: np.ndarray | None = None,
        core_indices: np.ndarray | None = None,
        eps: float | None = None,
    ) -> ClusterModel:
        if algorithm == "dbscan":
            assert core_indices is not None and eps is not None
            return cls("core", X[core_indices].copy(), labels[core_indices].copy(), float(eps))
        ids = np.unique(labels[labels >= 0])
        if centers is None or algorithm != "kmeans":
            centers = np.vstack([X[labels == c].mean(axis=0) for c in ids])
        return cls("centroid", np.asarray(centers, dtype=np.float64), ids.astype(np.intp))

    def predict(self, X: np.ndarray, chunk_rows: int = CHUNK_ROWS) -> np.ndarray:
        """Cluster of each row of ``X`` (-1: noise), in blocks so memory stays bounded."""
        out = np.empty(len(X), dtype=np.intp)
        if self.kind == "core":
            assert self.eps is not None
            rule = CoreRule(self.centers, self.labels, self.eps)
        for start in range(0, len(X), chunk_rows):
            block = np.asarray(X[start : start + chunk_rows], dtype=np.float64)
            if self.kind == "centroid":
                # |x - c|^2 = |x|^2 - 2 x.c + |c|^2; |x|^2 is the same for every c.
                d = -2.0 * block @ self.centers.T + (self.centers**2).sum(axis=1)
                out[start : start + len(block)] = self.labels[np.argmin(d, axis=1)]
            else:
                out[start : start + len(block)] = rule.predict(block)
        return out
