"""Each row's Euclidean distance to its own cluster's centre, with X whole or streamed.

Profiles pick representatives and atypical members from these distances (``apg.profiles.persona``).
:func:`centre_distances` needs the whole clustering matrix X; :class:`CentreDistances` gets
the same float64 values, bit for bit, from two passes over batches of X's rows, so a streamed
run never holds X. The identity rests on how numpy (2.x) orders its floating-point additions,
which the tests check on every shape they build:

* ``X[members].mean(axis=0)`` on a C-contiguous (m, d) array with d >= 2 adds the rows one
  after another, starting from +0.0 (not from the first row: a column of -0.0 averages to
  +0.0), then true-divides by m. Continuing a running sum batch after batch with the same
  reduce, the sum as the first row, repeats that sequence of additions exactly.
* With d == 1 the same call sums pairwise along the one contiguous axis, an order that no
  running sum reproduces, so the streamed pass keeps the members' values (8 bytes a row, as
  much as X itself) and averages them whole at the end.
* ``rows.sum(axis=1)`` on a C-contiguous (m, d) array gives each row the same value whatever
  m is, so distances can be computed batch by batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np


def _members(labels: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """Each cluster in ``labels`` (noise, < 0, excluded) with the positions of its rows."""
    for cluster in np.unique(labels):
        if cluster >= 0:
            yield int(cluster), np.flatnonzero(labels == cluster)


def _distances(
    X: np.ndarray, labels: np.ndarray, centre_of: Callable[[int, np.ndarray], np.ndarray]
) -> np.ndarray:
    out = np.full(len(labels), np.nan)
    for cluster, members in _members(labels):
        # One copy of the members' rows, squared in place: a big cluster's rows are tens of
        # MB. Fancy indexing makes it C-contiguous whatever X's layout, which the identity of
        # the row sums below depends on.
        rows = X[members]
        rows -= centre_of(cluster, rows)
        np.square(rows, out=rows)
        out[members] = np.sqrt(rows.sum(axis=1))
    return out


def centre_distances(X: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each row's distance to the mean of its cluster's rows of ``X``; NaN for noise (< 0)."""
    return _distances(X, labels, lambda _, rows: rows.mean(axis=0))


class CentreDistances:
    """:func:`centre_distances` from two passes over X's rows in batches, in row order.

    Pass 1: :meth:`add` every batch, then :meth:`centres`. Pass 2: :meth:`distances` of every
    batch (any order), which together equal ``centre_distances(X, labels)`` bit for bit, as do
    the centres ``X[labels == c].mean(axis=0)``. Memory is a cluster's share of one batch,
    plus, when X has a single column, that column's non-noise values (see the module notes).
    """

    def __init__(self) -> None:
        self._width: int | None = None
        self._sums: dict[int, np.ndarray] = {}
        self._counts: dict[int, int] = {}
        self._columns: dict[int, list[np.ndarray]] = {}  # single-column X only
        self._centres: dict[int, np.ndarray] | None = None

    def add(self, X_batch: np.ndarray, labels_batch: np.ndarray) -> None:
        """Pass 1: count and sum the batch's rows per cluster; batches must come in row order."""
        if self._centres is not None:
            raise RuntimeError("add() after centres(): the first pass is over")
        X_batch, labels_batch = self._checked(X_batch, labels_batch)
        width = X_batch.shape[1]
        for cluster, members in _members(labels_batch):
            self._counts[cluster] = self._counts.get(cluster, 0) + len(members)
            if width == 1:
                self._columns.setdefault(cluster, []).append(X_batch[members])
                continue
            # The running sum leads the members' rows, so one reduce down the rows continues
            # the whole-matrix sequence of additions (module notes). A cluster's first sum is
            # +0.0, which is where numpy's own reduce starts too.
            block = np.empty((len(members) + 1, width))
            block[0] = self._sums.get(cluster, 0.0)
            np.take(X_batch, members, axis=0, out=block[1:])
            self._sums[cluster] = np.add.reduce(block, axis=0)

    def centres(self) -> dict[int, np.ndarray]:
        """Each cluster's centre, as ``X[labels == c].mean(axis=0)``; ends the first pass."""
        return {c: centre.copy() for c, centre in self._finished().items()}

    def distances(self, X_batch: np.ndarray, labels_batch: np.ndarray) -> np.ndarray:
        """Pass 2: the batch's distances to their centres (NaN for noise rows)."""
        centres = self._finished()
        X_batch, labels_batch = self._checked(X_batch, labels_batch)

        def centre_of(cluster: int, _: np.ndarray) -> np.ndarray:
            if cluster not in centres:
                raise ValueError(f"cluster {cluster} had no rows in the first pass")
            return centres[cluster]

        return _distances(X_batch, labels_batch, centre_of)

    def _finished(self) -> dict[int, np.ndarray]:
        if self._centres is None:
            if self._width == 1:
                self._centres = {
                    c: np.concatenate(parts).mean(axis=0) for c, parts in self._columns.items()
                }
                self._columns.clear()
            else:
                # np.mean's own division: true_divide by the count.
                self._centres = {
                    c: np.true_divide(total, self._counts[c]) for c, total in self._sums.items()
                }
        return self._centres

    def _checked(
        self, X_batch: np.ndarray, labels_batch: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        X_batch = np.asarray(X_batch, dtype=np.float64)
        labels_batch = np.asarray(labels_batch)
        if X_batch.ndim != 2 or labels_batch.shape != (len(X_batch),):
            raise ValueError(
                f"a batch needs 2-d X and one label a row, got X {X_batch.shape} and labels "
                f"{labels_batch.shape}"
            )
        if self._width is None:
            self._width = X_batch.shape[1]
        elif X_batch.shape[1] != self._width:
            raise ValueError(f"X has {self._width} columns, this batch {X_batch.shape[1]}")
        return X_batch, labels_batch
