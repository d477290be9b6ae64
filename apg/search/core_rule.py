"""DBSCAN's rule for placing any user: the cluster of the nearest core sample when it lies
within eps, else noise (-1). Used by :meth:`apg.search.clusters.ClusterModel.predict`, so a
run's sample-mode assignment and ``apg assign`` apply the same rule.

A plain nearest-neighbour query (``kneighbors``) must prove which core is nearest, which in
15 dense dimensions means visiting most of the tree: 1,000,000 users against 4,800 core
samples took 12 s. But the answer is a cluster, not a core, and a certificate settles the
cluster without the nearest core:

* each core ``c`` knows ``sep(c)``, its distance to the nearest core of another cluster
  (DBSCAN puts cores within eps of each other in one cluster, so ``sep > eps``);
* an approximate query (scipy's ``cKDTree``, ``eps=APPROXIMATION``: a core at most
  ``1 + APPROXIMATION`` times farther than the nearest, found after visiting a few leaves)
  returns some core ``c`` at distance ``r`` from the user ``x``;
* if ``r <= eps`` and ``2 r < sep(c)``, every core of another cluster lies farther than
  ``sep(c) - r > r`` (triangle inequality), so the nearest core, at most ``r`` away and
  within eps, is in ``c``'s cluster: that cluster is the exact answer.

Noise has a certificate too: an approximate query (``NOISE_APPROXIMATION``) bounded by
``(1 + NOISE_APPROXIMATION) eps`` that finds no core proves that no core lies within eps
(cKDTree explores every cell nearer than ``bound / (1 + approximation)`` until it has found a
point). Users with neither certificate (just beyond eps of a cluster, or between two
clusters: 0.4% on the benchmark's dense table at its winning eps) get the exact answer from
a kd-tree query bounded by eps. Both margins are widened by a relative 1e-9,
far above the rounding of any distance here (~1e-16), so the certificate never decides a case
that rounding could flip.

Distances compared with eps are ``sqrt((x0 - c0)**2 + (x1 - c1)**2 + ...)`` summed in
feature order in doubles (scikit-learn's kd-tree distance, which the rule used before). Only
two cores of different clusters at exactly the same distance from a user (to the last bit)
could be resolved differently than another tree would.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

# The approximate query may return a core up to (1 + APPROXIMATION) times farther than the
# nearest; larger is faster and certifies slightly fewer users. Measured on 200,000 users of
# benchmarks/scale.py's dense table (4,800 cores): 0 (the exact query) 2.6 s, 2: 0.55 s,
# 4: 0.3 s, 10: 0.2 s, 30: 0.15 s; a core within eps found for 96.9%, 96.9%, 96.8%, 96.5%, 96%.
APPROXIMATION = 10.0
# The query that proves noise: no core within (1 + this) eps, approximately searched, means
# none within eps. Smaller leaves fewer users to the exact query, larger searches less.
NOISE_APPROXIMATION = 1.0
# Relative margin on every comparison a certificate relies on (see the module docstring).
_MARGIN = 1e-9


def _distances(X: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Row-wise distance between X[i] and C[i], summed in feature order like a kd-tree."""
    diff = X - C
    rdist = np.zeros(len(X))
    for j in range(X.shape[1]):
        rdist += diff[:, j] * diff[:, j]
    return np.sqrt(rdist)


class CoreRule:
    """The rule for one set of core samples; build once, apply to any number of blocks."""

    def __init__(
        self, cores: np.ndarray, labels: np.ndarray, eps: float, threads: int = -1
    ) -> None:
        self.cores = np.ascontiguousarray(cores, dtype=np.float64)
        self.labels = np.asarray(labels, dtype=np.intp)
        self.eps = float(eps)
        self.threads = threads
        self._tree = cKDTree(self.cores) if len(self.cores) else None
        # Each core's distance to the nearest core of another cluster (inf: none).
        self.separation = np.full(len(self.cores), np.inf)
        clusters = np.unique(self.labels)
        if len(clusters) > 1:
            for c in clusters:
                mine = self.labels == c
                other = cKDTree(self.cores[~mine])
                self.separation[mine] = other.query(self.cores[mine], k=1, workers=threads)[0]

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Cluster of each row of ``X`` (-1: no core sample within eps)."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        out = np.full(len(X), -1, dtype=np.intp)
        if self._tree is None or not len(X):
            return out
        rest = self._certify_clusters(X, out)
        rest = rest[self._certify_noise(X[rest])]
        out[rest] = self._exact(X[rest])
        return out

    def _query(self, X: np.ndarray, approximation: float, bound: float) -> np.ndarray:
        """Index of a core within ``bound`` at most ``1 + approximation`` times farther than
        the nearest (``len(cores)``: no core within ``bound / (1 + approximation)``)."""
        assert self._tree is not None
        bound = bound * (1 + _MARGIN) + np.finfo(np.float64).tiny
        _, idx = self._tree.query(
            X, k=1, eps=approximation, distance_upper_bound=bound, workers=self.threads
        )
        return idx

    def _certify_clusters(self, X: np.ndarray, out: np.ndarray) -> np.ndarray:
        """Set ``out`` where a core's certificate settles the cluster; the other rows."""
        idx = self._query(X, APPROXIMATION, self.eps)
        found = np.flatnonzero(idx < len(self.cores))
        core = idx[found]
        r = _distances(X[found], self.cores[core])
        sure = (r <= self.eps * (1 - _MARGIN)) & (2 * r < self.separation[core] * (1 - _MARGIN))
        out[found[sure]] = self.labels[core[sure]]
        rest = np.ones(len(X), dtype=bool)
        rest[found[sure]] = False
        return np.flatnonzero(rest)

    def _certify_noise(self, X: np.ndarray) -> np.ndarray:
        """Which rows may have a core within eps: a query that finds no core within
        ``(1 + NOISE_APPROXIMATION) eps`` proves there is none within eps."""
        if not len(X):
            return np.zeros(0, dtype=bool)
        idx = self._query(X, NOISE_APPROXIMATION, self.eps * (1 + NOISE_APPROXIMATION))
        return idx < len(self.cores)

    def _exact(self, X: np.ndarray) -> np.ndarray:
        """The rule by the nearest core itself, from a kd-tree query bounded by eps."""
        out = np.full(len(X), -1, dtype=np.intp)
        if not len(X):
            return out
        assert self._tree is not None
        bound = self.eps * (1 + _MARGIN) + np.finfo(np.float64).tiny
        _, idx = self._tree.query(X, k=1, distance_upper_bound=bound, workers=self.threads)
        found = np.flatnonzero(idx < len(self.cores))
        nearest = idx[found]
        within = _distances(X[found], self.cores[nearest]) <= self.eps
        out[found[within]] = self.labels[nearest[within]]
        return out
