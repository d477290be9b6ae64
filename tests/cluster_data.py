"""Clustering test data shared by the kernel tests."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import make_blobs


def blobs_with_noise(n: int, dim: int, seed: int, duplicates: bool) -> np.ndarray:
    """Four blobs, a tenth uniform noise and (optionally) a tenth duplicated rows, shuffled."""
    rng = np.random.default_rng(seed)
    n_noise = n // 10
    X, _ = make_blobs(n_samples=n - n_noise, n_features=dim, centers=4, random_state=seed)
    noise = rng.uniform(X.min(axis=0), X.max(axis=0), size=(n_noise, dim))
    X = np.vstack([X, noise])
    if duplicates:
        copies = rng.choice(n, size=n // 5, replace=False)
        X[copies[: n // 10]] = X[copies[n // 10 :]]
    return X[rng.permutation(n)]
