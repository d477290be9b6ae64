"""One pipeline run against the store: match identities, narrate what changed, record it.

Used by ``apg run`` and the scheduler. The previous run is read before the pipeline starts;
the new run is written in one transaction after it succeeds. A run that fails is recorded as
``failed`` with its error (and nothing else).
"""

from __future__ import annotations

from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from apg.config import Config
from apg.errors import StoreError
from apg.identity import Continuity, Plan
from apg.pipeline import Progress, RunResult
from apg.pipeline import run as run_pipeline
from apg.sources import SourceTable
from apg.store import Store, now


@dataclass
class StoredRun:
    result: RunResult
    plan: Plan

    @property
    def run_id(self) -> str:
        return self.result.run_id


def run_with_store(
    config: Config,
    store: Store,
    *,
    progress: Progress | None = None,
    out_dir: Path | None = None,
    table: SourceTable | None = None,
) -> StoredRun:
    say = progress or (lambda _msg: None)
    started = now()
    run_id = store.new_run_id(config)
    previous, taken = store.previous()
    hook = Continuity(previous, config.continuity, taken)
    try:
        result = run_pipeline(
            config, progress=progress, out_dir=out_dir, table=table, run_id=run_id, continuity=hook
        )
        assert hook.plan is not None
        store.record_run(result, hook.plan, started_at=started)
    except Exception as exc:
        # If the database is the problem, the original error matters more.
        with suppress(StoreError):
            store.record_failure(run_id, config, f"{type(exc).__name__}: {exc}", started_at=started)
        raise
    counts = hook.plan.counts()
    say(
        f"store: recorded {run_id} in {store.display_url} ("
        + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        + ")"
    )
    return StoredRun(result, hook.plan)
