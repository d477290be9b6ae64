"""Assign new users to the personas of a stored run, with that run's stored model.

The table is read like a ``file`` source (same readers, id checks and text handling), passed
through the stored preprocessing and placed with the winner's rule (see ``apg.model_io``):
nearest centre or centroid, or for DBSCAN the nearest core sample within eps, else outlier.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from apg.errors import DataError
from apg.model_io import StoredModel
from apg.sources.base import SourceContext
from apg.sources.file import FileSource
from apg.store import Store


@dataclass
class Assignment:
    run_id: str
    id_column: str
    frame: pd.DataFrame  # id, cluster (-1: outlier), persona_id ("" for outliers)

    def counts(self) -> dict[str, int]:
        """Users per persona id, largest first (ties by id); outliers (``""``) last."""
        counts = self.frame["persona_id"].value_counts()
        order = sorted(counts.items(), key=lambda kv: (kv[0] == "", -kv[1], kv[0]))
        return {str(k): int(v) for k, v in order}


def read_users(path: Path, id_column: str, sep: str | None = None) -> pd.DataFrame:
    ctx = SourceContext(base_dir=Path.cwd(), id_column=id_column)
    spec = FileSource(path=str(path), options={"sep": sep} if sep else {})
    return spec.finish(spec.read(ctx), ctx)


def assign_table(store: Store, table: pd.DataFrame, run: str | None = None) -> Assignment:
    """Assign the rows of ``table`` with the model of ``run`` (default: the latest run)."""
    return _assign(store.model(run), table)


def assign_file(
    store: Store, path: Path, run: str | None = None, sep: str | None = None
) -> Assignment:
    """Read ``path`` and assign its users; the id column is the one the run used."""
    stored = store.model(run)
    return _assign(stored, read_users(path, stored[3], sep))


def _assign(
    stored: tuple[str, StoredModel, dict[int, str], str], table: pd.DataFrame
) -> Assignment:
    run_id, model, persona_of, id_column = stored
    if id_column not in table.columns:
        raise DataError(
            f"the table has no id column {id_column!r} (the id column of run "
            f"{run_id}); columns are {list(table.columns)}"
        )
    if table.empty:
        raise DataError("the table has no rows to assign")
    labels = model.assign(table)
    frame = pd.DataFrame(
        {
            id_column: table[id_column].to_numpy(),
            "cluster": labels.astype(np.int64),
            "persona_id": [persona_of.get(int(c), "") for c in labels],
        }
    )
    return Assignment(run_id, id_column, frame)
