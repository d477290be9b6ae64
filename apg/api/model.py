""":class:`PersonaModel`: place new users into a run's personas, scikit-learn style.

It is the run's stored model (``apg.search.model_io``: the fitted preprocessing and the winner's
rule) with the cluster -> persona id map, so ``predict`` gives what ``apg assign`` writes for the
same rows: nearest centre or centroid, or for DBSCAN the nearest core sample within eps.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from apg.errors import DataError
from apg.search.model_io import StoredModel, from_fitted
from apg.store import Store, open_store
from apg.store.schema import jsonable

if TYPE_CHECKING:
    from apg.pipeline import RunResult

StoreLike = Store | str | os.PathLike[str]


class PersonaModel:
    """A fitted persona model: ``predict(frame)`` gives each row's persona id.

    Get one from a finished run (``apg.generate(...).model``) or from a recorded run
    (``PersonaModel.load(run_id, store=URL)``). Needs the run's clustering columns
    (:attr:`features`); other columns, the id among them, are ignored.
    """

    def __init__(
        self, model: StoredModel, persona_of: Mapping[int, str], *, run_id: str, id_column: str
    ) -> None:
        self._model = model
        self._persona_of = dict(persona_of)
        self.run_id = run_id
        self.id_column = id_column

    @classmethod
    def from_result(cls, result: RunResult) -> PersonaModel:
        """The model of a finished pipeline run, exactly as the store records it."""
        w = result.search.winner
        model = from_fitted(
            result.prepared.transformer, result.search.model, w.algorithm, jsonable(w.params)
        )
        model.training_agreement = result.search.training_agreement
        # Through its stored form, so a run's model and the one loaded back from the store are
        # the same numbers (arrays round-trip exactly; params become plain JSON values).
        model = StoredModel.from_json(model.to_json())
        persona_of = {p.cluster: p.persona_id for p in result.personas}
        return cls(model, persona_of, run_id=result.run_id, id_column=result.config.id_column)

    @classmethod
    def load(cls, run_id: str | None = None, *, store: StoreLike | None = None) -> PersonaModel:
        """The model of a recorded run (default: the latest) from ``store``: a database URL
        (``sqlite:///apg.db``, ``postgresql+psycopg://...``), a SQLite file path or an open
        :class:`apg.store.Store`; None is where ``apg assign`` looks without ``--db``
        (``$APG_DATABASE_URL``, else ``apg.db`` here). Raises :class:`apg.errors.StoreError`
        (a :class:`~apg.errors.NotFoundError` for an unknown run)."""
        if isinstance(store, Store):
            return cls._from_store(store, run_id)
        with open_store(None if store is None else os.fspath(store), create=False) as opened:
            return cls._from_store(opened, run_id)

    @classmethod
    def _from_store(cls, store: Store, run_id: str | None) -> PersonaModel:
        found, model, persona_of, id_column = store.model(run_id)
        return cls(model, persona_of, run_id=found, id_column=id_column)

    @property
    def features(self) -> list[str]:
        """The columns ``predict`` reads."""
        return list(self._model.features)

    @property
    def personas(self) -> list[str]:
        """The persona ids ``predict`` can return, in cluster order."""
        return [self._persona_of[c] for c in sorted(self._persona_of)]

    @property
    def algorithm(self) -> str:
        return self._model.algorithm

    def predict(self, frame: pd.DataFrame) -> pd.Series:
        """The persona id of every row of ``frame``, as a Series on ``frame.index`` named
        ``persona_id``; ``None`` where a user fits no persona (DBSCAN noise).

        Raises :class:`apg.errors.DataError` when ``frame`` lacks a column the model needs
        (the message names it) or holds text in a numeric one."""
        labels = self.predict_clusters(frame)
        # One lookup per possible label, then one take: -1 (noise) maps to None.
        top = int(labels.max()) if len(labels) else -1
        names = np.array([self._persona_of.get(c) for c in range(-1, top + 1)], dtype=object)
        return pd.Series(names[labels + 1], index=frame.index, name="persona_id", dtype=object)

    def predict_clusters(self, frame: pd.DataFrame) -> np.ndarray:
        """The cluster number of every row (``-1``: no persona), as ``assignments.csv``'s
        ``cluster`` column."""
        if not isinstance(frame, pd.DataFrame):
            raise DataError(f"predict() takes a pandas DataFrame, got {type(frame).__name__}")
        if frame.empty:
            return np.empty(0, dtype=np.int64)
        # Rows by position: the stored model never looks at the index.
        labels = self._model.assign(frame.reset_index(drop=True))
        return np.asarray(labels, dtype=np.int64)

    def __repr__(self) -> str:
        return (
            f"PersonaModel(run_id={self.run_id!r}, algorithm={self.algorithm!r}, "
            f"personas={self.personas!r})"
        )
