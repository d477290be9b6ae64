""":func:`generate` and :func:`execute` (one pipeline run, recorded or not) and the
:class:`Run` they return: personas, leaderboard, assignments, report, output folder and model.

``apg run`` calls :func:`execute` too, so the command line and the API are one code path.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from apg.api.display import cards_fragment, cards_page
from apg.api.inputs import (
    UNSET_SEED,
    ConfigLike,
    LlmLike,
    frame_table,
    resolve_config,
    run_inputs,
)
from apg.api.model import PersonaModel
from apg.config import Config
from apg.pipeline import RunResult, labels_frame
from apg.pipeline import run as run_pipeline
from apg.profiles.identity import Plan
from apg.profiles.narrative import Narrative
from apg.profiles.persona import OutlierProfile, PersonaProfile
from apg.report.data import report_data_from_result
from apg.report.html import render_html
from apg.report.outputs import candidates_frame, personas_document, write_outputs
from apg.sources import SourceTable
from apg.store import Store, open_store
from apg.store.engine import sqlite_path
from apg.store.locks import LockHeld
from apg.store.runner import judge, judge_narratives, run_with_store

logger = logging.getLogger("apg")

Progress = Callable[[str], None]
# A database URL, a SQLite file path, an open Store, or True: where `apg run` records by default.
StoreArg = Store | str | os.PathLike[str] | bool | None


@dataclass(frozen=True)
class Persona:
    """One persona of a run: its profile (sizes, contrasts, demographics, outcomes, confidence)
    and its narrative (name, summary, goals, frustrations, each citing its facts)."""

    id: str
    name: str
    size: int
    share: float
    profile: PersonaProfile = field(repr=False)
    narrative: Narrative | None = field(repr=False)

    @classmethod
    def of(cls, profile: PersonaProfile) -> Persona:
        n = profile.narrative
        name = n.name if n and n.name.strip() else f"Persona {profile.persona_id}"
        return cls(profile.persona_id, name, profile.size, profile.share, profile, n)


class Run:
    """A finished run. Everything ``apg run --out`` writes, as Python objects:

    * :attr:`personas` (:class:`Persona`), :attr:`outliers`, :attr:`selection`;
    * :attr:`candidates` and :attr:`assignments`, the rows of candidates.csv and
      assignments.csv as DataFrames;
    * :meth:`report_html` (report.html), :meth:`to_dict` (personas.json), :meth:`save`;
    * :attr:`model`, the fitted :class:`~apg.api.model.PersonaModel`.

    In a notebook the run shows as its persona cards.
    """

    def __init__(
        self,
        result: RunResult,
        *,
        plan: Plan | None = None,
        store_url: str | None = None,
        inputs: Sequence[Path] = (),
    ) -> None:
        self.result = result
        self.plan = plan  # identity matching against the store's previous run; None unrecorded
        self.store_url = store_url  # where it was recorded (password masked); None unrecorded
        self._inputs = list(inputs)
        self._document: dict[str, Any] | None = None
        self._report: str | None = None
        self._model: PersonaModel | None = None

    @property
    def run_id(self) -> str:
        return self.result.run_id

    @property
    def created_at(self) -> str:
        return self.result.created_at

    @property
    def config(self) -> Config:
        """The settings the run used (with every keyword override applied)."""
        return self.result.config

    @property
    def recorded(self) -> bool:
        return self.store_url is not None

    @property
    def personas(self) -> list[Persona]:
        return [Persona.of(p) for p in self.result.personas]

    @property
    def outliers(self) -> OutlierProfile:
        """Users in no persona (DBSCAN noise); ``size`` 0 when every user has one."""
        return self.result.outliers

    @property
    def selection(self) -> dict[str, Any]:
        """How the clustering was chosen: ``personas.json``'s ``selection``."""
        return dict(self.to_dict()["selection"])

    @property
    def weak(self) -> list[str]:
        """Why the structure is weak (README "Weak structure"); empty when it is clear."""
        return list(self.result.search.weak)

    @property
    def status(self) -> str:
        """``succeeded``, or ``degraded`` when narratives fell back to the offline text."""
        return self._judged()[0]

    @property
    def status_reason(self) -> str | None:
        return self._judged()[1]

    def _judged(self) -> tuple[str, str | None]:
        if self.plan is not None:
            return judge(self.plan)
        personas = self.result.personas
        narratives = [p.narrative for p in personas if p.narrative is not None]
        return judge_narratives(narratives, "narratives", total=len(personas))

    @property
    def candidates(self) -> pd.DataFrame:
        """Every clustering tried, one row each: the content of candidates.csv."""
        return candidates_frame(self.result.search.candidates)

    @property
    def assignments(self) -> pd.DataFrame:
        """One row per clustered user: id, cluster (-1 noise) and persona_id (empty for
        noise): the content of assignments.csv."""
        return labels_frame(self.result)

    @property
    def model(self) -> PersonaModel:
        """The fitted model: ``run.model.predict(new_users)``."""
        if self._model is None:
            self._model = PersonaModel.from_result(self.result)
        return self._model

    def to_dict(self) -> dict[str, Any]:
        """The content of personas.json (data, selection, personas, outliers)."""
        if self._document is None:
            self._document = personas_document(self.result)
        return self._document

    def report_html(self) -> str:
        """report.html: one self-contained page (cards, leaderboard, charts)."""
        if self._report is None:
            self._report = render_html(report_data_from_result(self.result))
        return self._report

    def save(self, folder: str | os.PathLike[str], *, include_timing: bool = True) -> Path:
        """Write the files of ``apg run --out folder`` (personas.json, candidates.csv,
        assignments.csv, report.md, report.html) and return the folder.

        ``folder`` must be new, empty or a folder apg wrote before (then it is replaced whole,
        atomically), and must not hold the run's inputs (config, source files, SQLite store).
        ``include_timing=False`` blanks candidates.csv's ``seconds`` so reruns are
        byte-identical."""
        return write_outputs(
            self.result, Path(folder), include_timing=include_timing, protected=self._inputs
        )

    def _repr_html_(self) -> str:
        page = self._report if self._report is not None else cards_page(self.result)
        return cards_fragment(page, self.result)

    def __repr__(self) -> str:
        names = ", ".join(f"{p.id} {p.name}" for p in self.personas)
        return (
            f"<apg.Run {self.run_id}: {len(self.result.personas)} personas from "
            f"{len(self.result.labels):,} users ({names})>"
        )


def reporter(progress: Progress | bool | None) -> Progress:
    """Where progress messages go: always the ``apg`` logger (INFO), and the callback, or
    stderr for ``progress=True``. Never stdout."""

    def say(message: str) -> None:
        logger.info(message)
        if progress is True:
            print(message, file=sys.stderr)
        elif callable(progress):
            progress(message)

    return say


def execute(
    config: Config,
    *,
    table: SourceTable | None = None,
    store: StoreArg = None,
    progress: Progress | bool | None = None,
    inputs: Sequence[Path] = (),
    wait: bool = False,
    on_wait: Callable[[LockHeld], None] | None = None,
) -> Run:
    """One run of ``config`` (on ``table``, else its sources), recorded in ``store`` unless it
    is None: what ``apg run`` and :func:`generate` do. ``inputs`` are the files the run reads
    (an output folder may not hold them); a SQLite store's file is added. ``wait`` waits for
    another run holding the store's run lock instead of failing (``on_wait`` is told once)."""
    say = reporter(progress)
    if store is None or store is False:
        result = run_pipeline(config, progress=say, table=table)
        return Run(result, inputs=inputs)
    if isinstance(store, Store):
        return _recorded(config, store, table, say, inputs, wait, on_wait)
    option = None if store is True else os.fspath(store)
    with open_store(option, config.storage.url) as opened:
        return _recorded(config, opened, table, say, inputs, wait, on_wait)


def _recorded(
    config: Config,
    store: Store,
    table: SourceTable | None,
    say: Progress,
    inputs: Sequence[Path],
    wait: bool,
    on_wait: Callable[[LockHeld], None] | None,
) -> Run:
    stored = run_with_store(config, store, progress=say, table=table, wait=wait, on_wait=on_wait)
    database = sqlite_path(store.url)
    files = [*inputs, database] if database and database not in inputs else list(inputs)
    run = Run(stored.result, plan=stored.plan, store_url=store.display_url, inputs=files)
    if run.status == "degraded":
        # INFO, not WARNING: a caller reads run.status; apg run prints its own warning line.
        logger.info("run %s recorded as degraded: %s", run.run_id, run.status_reason)
    return run


def generate(
    frame: pd.DataFrame | None = None,
    *,
    id: str | None = None,
    behavioral: Iterable[str] | str = (),
    attitudinal: Iterable[str] | str = (),
    demographic: Iterable[str] | str = (),
    outcome: Iterable[str] | str = (),
    config: ConfigLike | None = None,
    llm: LlmLike | None = None,
    seed: int = UNSET_SEED,
    store: StoreArg = None,
    progress: Progress | bool | None = None,
) -> Run:
    """Generate personas: the pipeline of ``apg run``, from a DataFrame or a config's sources.

    Args:
        frame: the user table, one row per user. It is the run's only source (a config's
            ``sources`` are then not read) and is never modified. None: read the config's
            sources.
        id: the id column. Without it a DataFrame's rows are numbered 1, 2, ... into a new
            column ``row`` (as ``apg run --data`` without ``--id``), unless the config names
            ``id_column``. Ids are compared as text, as read from a CSV file.
        behavioral, attitudinal: the columns to cluster on (at least one of the two).
        demographic: columns described per persona, never clustered.
        outcome: results such as churn, reported per persona, never clustered.
        config: a YAML file path, a dict of config keys (``sources`` and ``id_column`` may be
            left out with a DataFrame) or an :class:`apg.config.Config`. The keyword arguments
            override it: a role given here replaces that role's list, ``id`` the id_column.
        llm: the narration: ``"offline"`` or ``"openai"`` (narration.client), a dict of
            narration settings over the config's (e.g. ``{"client": "openai", "model":
            "gpt-4o-mini"}``) or a NarrationConfig. None: the config's, else offline.
        seed: search.seed. Not given: the config's search.seed (0 without a config).
        store: None records nothing. A database URL (``sqlite:///apg.db``), a SQLite file path
            or an open :class:`apg.store.Store` records the run as ``apg run --db`` does
            (identity matching with the previous run, drafts to review); True records where
            ``apg run`` would by default ($APG_DATABASE_URL, storage.url, else apg.db).
        progress: a callable given each progress line, or True for stderr. Progress always
            goes to the ``apg`` logger at INFO; nothing is printed to stdout.

    Returns:
        The finished :class:`Run`.

    Raises:
        apg.errors.ApgError: a subclass naming the problem: ConfigError (settings), DataError
            (e.g. a column not in the table), SourceError, SearchError (no clustering met
            the selection rules), StoreError.
    """
    roles: Mapping[str, Iterable[str] | str] = {
        "behavioral": behavioral,
        "attitudinal": attitudinal,
        "demographic": demographic,
        "outcome": outcome,
    }
    cfg, config_path, numbered = resolve_config(
        frame, id=id, roles=roles, config=config, llm=llm, seed=seed
    )
    table = None if frame is None else frame_table(frame, cfg, numbered)
    inputs = run_inputs(cfg, config_path, None)
    return execute(cfg, table=table, store=store, progress=progress, inputs=inputs)
