"""The prepare, search, assign and profile stages of a streamed run: a table never held whole.

A streamed run (``search.stream``, or ``apg run --stream``) reads a Parquet source a column
or a batch of rows at a time (``apg.sources.parquet_columns``) and gives the results of the
whole-table run, to the bit: the same ids, labels, profiles and model.

* **prepare**: each column is checked, and the imputer and scaler fitted, one column at a
  time (``select_features_by_column``, ``prepare_by_column``); the matrix X is never built.
* **search**: only the rows the search needs are read and transformed (the fitted sample, the
  fresh sample that checks the assignment, and the report's sample), then the search runs on
  them as it does on rows of the whole matrix. Up to ``search.exact_max_rows`` rows every row
  is read, and the search is the exact one.
* **assign** (one pass over row batches): each batch is transformed and placed by the
  winner's rule, fitted rows keep their scored labels, and the cluster sums for the centres
  accumulate in row order (``apg.profiles.centres``).
* **profile** (a second pass): each row's distance to its centre; then every profile figure
  from one column at a time and the labels.

Memory holds the ids, the labels and distances (16 bytes a row), one column, and one batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from apg.config import Config
from apg.prepare.features import select_features_by_column
from apg.prepare.preprocessing import Prepared, prepare_by_column, transform
from apg.profiles.centres import CentreDistances
from apg.profiles.persona import (
    OutlierProfile,
    PersonaProfile,
    build_profiles_from_distances,
    centre_distances,
)
from apg.search.clusters import CHUNK_ROWS
from apg.search.leaderboard import (
    MAP_SAMPLE,
    SearchResult,
    finish_sample,
    run_search,
    sample_plan,
    sample_rows,
    search_sample,
)
from apg.sources.parquet_columns import StreamedTable

Progress = Callable[[str], None]

# Batches are whole blocks of ``ClusterModel.predict``, so every row meets the arithmetic it
# meets in a whole-matrix predict.
BATCH_ROWS = 2 * CHUNK_ROWS


@dataclass
class Streamed:
    """What the streamed stages hand the rest of the run."""

    prepared: Prepared  # X holds only the rows of ``x_rows``
    search: SearchResult
    x_rows: np.ndarray  # sorted row positions whose matrix rows are in prepared.X
    training_agreement: float  # share of rows the winner's rule places as the run did
    centres: CentreDistances | None = None  # sample mode, after assign_streamed
    personas: list[PersonaProfile] | None = None
    outliers: OutlierProfile | None = None


def prepare_streamed(table: StreamedTable, config: Config) -> Prepared:
    assert table.columns is not None
    frame = select_features_by_column(
        table.columns,
        config.id_column,
        config.features,
        degenerate=config.preprocessing.degenerate_columns,
        origin=table.labels[0],
    )
    return prepare_by_column(frame, config.preprocessing, seed=config.search.seed)


def _batches(prepared: Prepared) -> Iterator[pd.DataFrame]:
    # BATCH_ROWS is read at call time so tests can make batches small.
    return prepared.frame.raw.batches(prepared.frame.features, BATCH_ROWS)


def search_streamed(prepared: Prepared, config: Config, say: Progress) -> Streamed:
    """The search on the rows it needs, read and transformed alone."""
    cfg = config.search
    n = len(prepared.frame.ids)
    plan = sample_plan(n, cfg)
    if plan is None:
        rows = np.arange(n)  # exact mode: every row (at most exact_max_rows)
    else:
        rows = np.union1d(np.union1d(plan.fitted, plan.check), sample_rows(n, MAP_SAMPLE, cfg.seed))
    say(f"search: reading {len(rows):,} of {n:,} rows")
    X = transform(prepared, prepared.frame.raw.rows(rows, prepared.frame.features))
    prepared.X = X
    if plan is None:
        result = run_search(X, cfg, say)
        agreement = float(np.mean(result.model.predict(X) == result.labels))
        return Streamed(prepared, result, rows, agreement)
    result = search_sample(X[np.searchsorted(rows, plan.fitted)], cfg, say, n)
    return Streamed(prepared, result, rows, 1.0)


def assign_streamed(run: Streamed, config: Config) -> None:
    """Sample mode: place every row, a batch at a time (exact mode placed them already)."""
    plan = sample_plan(len(run.prepared.frame.ids), config.search)
    if plan is None:
        return
    prepared, result = run.prepared, run.search
    start = time.perf_counter()
    n = len(prepared.frame.ids)
    labels = np.empty(n, dtype=np.intp)
    run.centres = CentreDistances()
    fitted, scored = plan.fitted, result.labels
    mismatched = 0
    lo = 0
    for batch in _batches(prepared):
        X = transform(prepared, batch)
        placed = result.model.predict(X)
        hi = lo + len(placed)
        first, last = np.searchsorted(fitted, [lo, hi])
        at = fitted[first:last] - lo
        # Fitted rows keep the labels that were scored; the rule may place a few elsewhere.
        mismatched += int(np.count_nonzero(placed[at] != scored[first:last]))
        placed[at] = scored[first:last]
        labels[lo:hi] = placed
        run.centres.add(X, placed)
        lo = hi
    run.training_agreement = 1.0 - mismatched / n
    finish_sample(result, plan, labels, prepared.X[np.searchsorted(run.x_rows, plan.check)], start)


def profile_streamed(run: Streamed) -> None:
    """Every row's distance to its centre (a second pass in sample mode), then the profiles
    from one column at a time."""
    prepared, labels = run.prepared, run.search.labels
    if run.centres is None:
        distances = centre_distances(prepared.X, labels)
    else:
        distances = np.empty(len(labels), dtype=np.float64)
        lo = 0
        for batch in _batches(prepared):
            X = transform(prepared, batch)
            hi = lo + len(X)
            distances[lo:hi] = run.centres.distances(X, labels[lo:hi])
            lo = hi
    run.personas, run.outliers = build_profiles_from_distances(prepared.frame, labels, distances)
