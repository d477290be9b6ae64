"""One persona run: sources -> features -> preprocessing -> search -> profiles -> narration.

``run`` returns everything the run produced; ``apg.report.outputs`` writes it to a folder
and, later, the store records it. Each stage lives in its own module; this one only wires them.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow as pa

from apg.config import Config
from apg.narration import NarrationContext, make_narrator
from apg.narration.base import sheet_for
from apg.narration.display import Labels, check_display_names, check_value_labels
from apg.narration.freshness import number_check
from apg.prepare.features import FeatureFrame
from apg.prepare.matrix import Matrix, matrix_of, prepare_table
from apg.prepare.preprocessing import Prepared
from apg.profiles.identity import NumberCheck
from apg.profiles.narrative import Narrative
from apg.profiles.persona import OutlierProfile, PersonaProfile, Profiler, rate_confidence
from apg.search.leaderboard import SearchResult, assign_everyone, search_matrix
from apg.sources import SourceTable, load_sources
from apg.sources.parquet_columns import StreamedTable, load_streamed, stream_plan
from apg.version import __version__

Progress = Callable[[str], None]


@dataclass
class RunResult:
    run_id: str
    created_at: str
    config: Config
    table: SourceTable
    prepared: Prepared
    search: SearchResult
    personas: list[PersonaProfile]
    outliers: OutlierProfile
    labels: np.ndarray  # per row of prepared.frame; -1 is noise
    llm_calls: list[object] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    # The clustering matrix: in memory, or read from a streamed table when rows are asked for.
    matrix: Matrix | None = field(default=None, repr=False)

    @property
    def frame(self) -> FeatureFrame:
        return self.prepared.frame

    def matrix_rows(self, rows: np.ndarray) -> np.ndarray:
        """Rows of the clustering matrix at the sorted positions ``rows``."""
        matrix = self.matrix if self.matrix is not None else matrix_of(self.prepared)
        return matrix.rows(rows)


def created_at() -> str:
    """Now in UTC, or SOURCE_DATE_EPOCH when set, so reruns can be byte-identical."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = datetime.fromtimestamp(int(epoch), UTC) if epoch else datetime.now(UTC)
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def load_table(config: Config, say: Progress) -> SourceTable:
    """The run's table: streamed (``search.stream``) or read whole."""
    columns = stream_plan(
        config.sources,
        config.base_dir,
        config.id_column,
        config.search.stream,
        config.search.stream_memory_mib,
        len(config.features.clustering),
    )
    if columns is None:
        return load_sources(config.sources, config.base_dir, config.id_column)
    say(f"read: streaming {columns.label}, {columns.num_rows:,} rows, a column at a time")
    return load_streamed(columns)


def run_identity(table: SourceTable, config: Config) -> str:
    """A content address for the run: the same data, config and apg version give the same id."""
    # How the table is read (streamed or whole) does not change the results.
    settings = config.model_dump(
        mode="json", exclude={"base_dir": True, "search": {"stream", "stream_memory_mib"}}
    )
    h = hashlib.sha256()
    h.update(table.fingerprint.encode())
    h.update(json.dumps(settings, sort_keys=True).encode())
    h.update(__version__.encode())
    return "run-" + h.hexdigest()[:12]


class Timer:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    def stage(self, name: str) -> _Stage:
        return _Stage(self, name)


class _Stage:
    def __init__(self, timer: Timer, name: str) -> None:
        self.timer, self.name = timer, name

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        release_freed_memory()
        self.timer.timings[self.name] = time.perf_counter() - self.start


def _find_malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc; musl has none
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _find_malloc_trim()


def release_freed_memory() -> None:
    """Give the memory a finished stage freed back to the OS, so the next stage does not sit
    on top of it: glibc keeps freed blocks in the heaps of the threads that used them (the
    search's K-Means and BLAS threads leave ~100 MB at 1M users) and Arrow's allocator keeps
    the buffers freed while a Parquet file became a DataFrame (~80 MB). A few milliseconds.
    """
    pa.default_memory_pool().release_unused()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


class ContinuityHook(Protocol):
    """Identity across runs (``apg.profiles.identity.Continuity``), called between profiling and
    narration: it renames personas to stable ids, carries narratives over and returns the
    personas that still need narrating."""

    def before_narration(
        self, run_id: str, prepared: Prepared, personas: list[PersonaProfile], labels: np.ndarray
    ) -> list[PersonaProfile]: ...

    def after_narration(self, personas: list[PersonaProfile]) -> None: ...

    def check_numbers(self, personas: list[PersonaProfile], check: NumberCheck) -> None: ...


def run(
    config: Config,
    *,
    progress: Progress | None = None,
    table: SourceTable | None = None,
    run_id: str | None = None,
    continuity: ContinuityHook | None = None,
) -> RunResult:
    say = progress or (lambda _msg: None)
    if config.narration.client == "openai":
        from apg.narration.prompts import check_prompts

        # A missing or broken template fails now, not after a search that may take minutes.
        check_prompts(config.narration.prompts_dir)
    timer = Timer()
    with timer.stage("read"):
        if table is None:
            say("read: loading sources")
            table = load_table(config, say)
        streamed = table.columns if isinstance(table, StreamedTable) else None
        n_columns = len(streamed.names) if streamed else len(table.frame.columns)
        say(f"read: {len(table.frame)} rows, {n_columns} columns")
    with timer.stage("prepare"):
        prepared = prepare_table(table, config)
        matrix = matrix_of(prepared)
        labels = Labels.from_config(config.labels)
        f = config.features
        check_display_names(labels, [*f.behavioral, *f.attitudinal, *f.demographic, *f.outcome])
        check_value_labels(labels, prepared.frame)  # value labels only for code columns
        say(
            f"prepare: {len(prepared.frame.ids)} rows x {len(prepared.columns)} columns"
            + (f" ({prepared.rows_dropped} rows dropped)" if prepared.rows_dropped else "")
        )
        if prepared.transforms:
            names = ", ".join(f"{t['column']} ({t['transform']})" for t in prepared.transforms)
            say(f"prepare: transformed {len(prepared.transforms)} skewed column(s): {names}")
        if prepared.redundant:
            names = ", ".join(f"{r['column']} (= {r['kept']})" for r in prepared.redundant)
            say(f"prepare: dropped {len(prepared.redundant)} repeated column(s): {names}")
    with timer.stage("search"):
        result = search_matrix(matrix, config.search, say)
        w = result.winner
        say(f"search: chose {w.key}, silhouette {w.silhouette:.3f}")
    profiler = Profiler(prepared.frame, matrix)
    with timer.stage("assign"):
        assign_everyone(matrix, result, config.search, on_batch=profiler.observe)
    with timer.stage("profile"):
        personas, outliers = profiler.profiles(result.labels)
        stability = result.winner.cluster_stability
        rate_confidence(personas, matrix, result.labels, stability, config.search.seed)
        drop_repeated_categories(personas, prepared.redundant)
    run_id = run_id or run_identity(table, config)
    to_narrate = personas
    if continuity is not None:
        to_narrate = continuity.before_narration(run_id, prepared, personas, result.labels)
    with timer.stage("narrate"):
        narrator = make_narrator(config.narration, progress=say)
        ctx = NarrationContext(
            run_id=run_id,
            n_users=len(result.labels),
            outliers=outliers if outliers.size else None,
            feature_roles={c: prepared.frame.role_of(c) for c in prepared.frame.features},
            out_dir=None,  # outputs.py writes llm_calls.jsonl with the rest of the folder
            taken_names=tuple(
                p.narrative.name
                for p in personas
                if p.narrative is not None and all(p is not q for q in to_narrate)
            ),
            labels=labels,
        )
        narratives: list[Narrative] = narrator.narrate(to_narrate, ctx) if to_narrate else []
        for persona, narrative in zip(to_narrate, narratives, strict=True):
            persona.narrative = narrative
        if continuity is not None:
            continuity.after_narration(personas)
            # Carried narratives keep the numbers of the run that drafted them: check them
            # against this run's facts (refreshed or marked stale: apg.narration.freshness).
            cell, level = config.narration.min_cell, config.narration.significance
            continuity.check_numbers(
                personas, number_check(lambda p: sheet_for(p, ctx, cell, level))
            )
        carried = len(personas) - len(to_narrate)
        say(
            f"narrate: {len(to_narrate)} personas ({config.narration.client})"
            + (f", {carried} carried over from the previous run" if carried else "")
        )
    return RunResult(
        run_id=run_id,
        created_at=created_at(),
        config=config,
        table=table,
        prepared=prepared,
        search=result,
        personas=personas,
        outliers=outliers,
        labels=result.labels,
        llm_calls=list(getattr(narrator, "calls", [])),
        timings=timer.timings,
        matrix=matrix,
    )


def drop_repeated_categories(
    personas: list[PersonaProfile], redundant: list[dict[str, object]]
) -> None:
    """Drop the category contrasts whose indicator prepare dropped as a repeat of another
    matrix column (``OnlineSecurity = "No internet service"`` repeats ``InternetService =
    "No"``): the kept column states the fact once, so names, summaries and goals do not say
    it six times. Matrix columns of a category are named ``<column>_<value>``."""
    repeated = {str(r["column"]) for r in redundant}
    if not repeated:
        return
    for p in personas:
        p.category_contrasts = [
            c for c in p.category_contrasts if f"{c.feature}_{c.value}" not in repeated
        ]


def labels_frame(result: RunResult, rows: slice = slice(None)) -> pd.DataFrame:
    """One row per clustered user (or per user of ``rows``): id, cluster (-1 noise) and
    persona id (empty for noise)."""
    persona_of = {p.cluster: p.persona_id for p in result.personas}
    labels = result.labels[rows]
    return pd.DataFrame(
        {
            result.config.id_column: result.frame.ids.iloc[rows].to_numpy(),
            "cluster": labels,
            "persona_id": [persona_of.get(int(c), "") for c in labels],
        }
    )
