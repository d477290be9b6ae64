"""Write one run: its row, candidates, model, personas, drafts, members and LLM calls.

Everything is written inside the caller's single write transaction, so a crash leaves either
the whole run or nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from apg.config import Config
from apg.profiles.identity import Plan
from apg.profiles.narrative import Narrative
from apg.search.model_io import from_fitted
from apg.sources.masking import mask_secrets, mask_tree
from apg.store import schema as t
from apg.store.runstate import save_run
from apg.store.schema import jsonable
from apg.version import __version__

if TYPE_CHECKING:
    from apg.pipeline import RunResult

BATCH = 5000


def _num(value: Any) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)


def masked_config(config: Config) -> dict[str, Any]:
    """The run's settings with credentials replaced by ``***``."""
    secrets: list[str] = []
    for spec in config.sources:
        secrets += spec.secret_values()
    tree = mask_tree(config.model_dump(mode="json", exclude={"base_dir"}))

    def scrub(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: scrub(x) for k, x in v.items()}
        if isinstance(v, list):
            return [scrub(x) for x in v]
        return mask_secrets(v, secrets) if isinstance(v, str) else v

    return scrub(tree)


def author_of(narrative: Narrative) -> str:
    """Who drafted a generated narrative, e.g. ``apg/offline`` or ``apg/llm:gpt-4o-mini``."""
    return f"apg/{narrative.source}" + (f":{narrative.model}" if narrative.model else "")


def next_version(conn: sa.Connection, persona_id: str) -> int:
    n = t.narratives
    found = conn.execute(
        sa.select(sa.func.max(n.c.version)).where(n.c.persona_id == persona_id)
    ).scalar()
    return int(found or 0) + 1


def record_failure(
    conn: sa.Connection,
    run_id: str,
    started_at: str,
    finished_at: str,
    config: Config | None,
    error: str,
) -> None:
    """The run's ``running`` row (or a new row) becomes ``failed`` with its error."""
    save_run(
        conn,
        dict(
            id=run_id,
            started_at=started_at,
            finished_at=finished_at,
            status="failed",
            error=error[:4000],
            reason=error[:4000],
            apg_version=__version__,
            config=sa.null() if config is None else masked_config(config),
        ),
    )


def record_run(
    conn: sa.Connection,
    result: RunResult,
    plan: Plan,
    *,
    started_at: str,
    finished_at: str,
    status: str = "succeeded",
    reason: str | None = None,
) -> None:
    """The run's ``running`` row (or a new row) becomes ``status`` with all its content."""
    from apg.pipeline import run_identity
    from apg.report.outputs import personas_document

    run_id = result.run_id
    w = result.search.winner
    doc = personas_document(result)
    config = masked_config(result.config)
    labels = np.asarray(result.labels)
    save_run(
        conn,
        dict(
            id=run_id,
            started_at=started_at,
            finished_at=finished_at,
            status=status,
            reason=reason,
            apg_version=__version__,
            config=config,
            config_hash="sha256:"
            + hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest(),
            content_id=run_identity(result.table, result.config),
            fingerprint=result.table.fingerprint,
            rows_read=doc["data"]["rows_read"],
            rows_used=doc["data"]["rows_used"],
            rows_dropped=doc["data"]["rows_dropped"],
            algorithm=w.algorithm,
            params=jsonable(w.params),
            n_clusters=len(result.personas),
            silhouette=_num(w.silhouette),
            noise_share=_num(float(np.mean(labels < 0))),
            weak=list(result.search.weak),
            summary=jsonable(
                {
                    "data": doc["data"],
                    "selection": doc["selection"],
                    "outliers": doc["outliers"],
                    "timings": result.timings,
                    "search_mode": getattr(result.search, "mode", "exact"),
                }
            ),
            previous_run_id=plan.previous_run_id,
            match_method=plan.method,
            shared_ids=plan.shared_ids,
            feature_stats={k: list(v) for k, v in jsonable(plan.feature_stats).items()},
        ),
    )
    _candidates(conn, run_id, result)
    model = from_fitted(
        result.prepared.transformer, result.search.model, w.algorithm, jsonable(w.params)
    )
    model.training_agreement = result.search.training_agreement
    conn.execute(
        t.models.insert().values(run_id=run_id, algorithm=w.algorithm, document=model.to_json())
    )
    _personas(conn, result, plan, finished_at)
    _members(conn, run_id, result.frame.ids, labels)
    _llm_calls(conn, run_id, list(getattr(result, "llm_calls", []) or []))
    _report(conn, result)


def _members(conn: sa.Connection, run_id: str, ids: pd.Series, labels: np.ndarray) -> None:
    """One row per user. Plain tuples through the driver's executemany, a batch at a time:
    SQLAlchemy's per-row dict handling took 8 s for a million users; rows built all at once
    cost ~400 MB. Ids become text a batch at a time too (all at once: ~60 MB per million)."""
    mark = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(conn.dialect.paramstyle)
    sql = f"INSERT INTO {t.members.name} (run_id, user_id, cluster) VALUES ({mark}, {mark}, {mark})"
    # In key order the primary-key index grows at its end instead of splitting pages all over:
    # 1M shuffled ids went into SQLite in 2.6 s instead of 5.2 s (measured). Arrow-backed text
    # sorts in Arrow (0.3 s a million, no Python strings); other ids keep their order.
    arrow = isinstance(ids.dtype, pd.StringDtype) and ids.dtype.storage == "pyarrow"
    order = ids.array.argsort(kind="stable") if arrow else np.arange(len(ids))
    for start in range(0, len(ids), MEMBER_BATCH):
        rows = order[start : start + MEMBER_BATCH]
        block = zip(ids.iloc[rows].astype(str).tolist(), labels[rows].tolist(), strict=True)
        if mark is None:  # another driver: let SQLAlchemy bind the parameters
            conn.execute(
                t.members.insert(),
                [{"run_id": run_id, "user_id": u, "cluster": c} for u, c in block],
            )
        else:
            conn.exec_driver_sql(sql, [(run_id, u, int(c)) for u, c in block])


MEMBER_BATCH = 50_000


def _report(conn: sa.Connection, result: RunResult) -> None:
    """What report.html needs (v5), so ``apg report`` and ``apg serve`` can redraw it."""
    from apg.report.data import report_data_from_result
    from apg.store.reports import write_report

    write_report(conn, report_data_from_result(result))


def _candidates(conn: sa.Connection, run_id: str, result: RunResult) -> None:
    rows = [
        {
            "run_id": run_id,
            "idx": i,
            "algorithm": c.algorithm,
            "params": jsonable(c.params),
            "n_clusters": int(c.n_clusters),
            "noise_share": _num(c.noise_share),
            "min_cluster_share": _num(c.min_cluster_share),
            "silhouette": _num(c.silhouette),
            "davies_bouldin": _num(c.davies_bouldin),
            "calinski_harabasz": _num(c.calinski_harabasz),
            "inertia": None if c.inertia is None else _num(c.inertia),
            "eligible": bool(c.eligible),
            "reason": c.reason or None,
            "selected": bool(c.selected),
            "seconds": _num(c.seconds),
            "choice_silhouette": _num(c.choice_silhouette),
            "stability": None if c.stability is None else _num(c.stability),
            "evenness": _num(c.evenness),
        }
        for i, c in enumerate(result.search.candidates)
    ]
    if rows:
        conn.execute(t.candidates.insert(), rows)


def _personas(conn: sa.Connection, result: RunResult, plan: Plan, now: str) -> None:
    run_id = result.run_id
    by_id = {p.persona_id: p for p in result.personas}
    rank = {p.persona_id: i for i, p in enumerate(result.personas, start=1)}
    for o in plan.outcomes:
        if o.status == "new":
            conn.execute(
                t.personas.insert().values(id=o.persona_id, created_run_id=run_id, created_at=now)
            )
        profile = by_id.get(o.persona_id)
        conn.execute(
            t.persona_runs.insert().values(
                run_id=run_id,
                persona_id=o.persona_id,
                cluster=o.cluster,
                rank=rank.get(o.persona_id),
                size=o.size,
                share=float(o.share),
                status=o.status,
                profile=None
                if profile is None
                else jsonable(profile.model_dump(mode="json", exclude={"narrative"})),
                matched_by=o.matched_by,
                similarity=_num(o.similarity) if o.similarity is not None else None,
                drift=None if o.drift is None else jsonable(o.drift.to_dict()),
            )
        )
    status = {o.persona_id: o for o in plan.outcomes}
    written: dict[str, int] = {}
    for pid, narrative in [*plan.drafts.items(), *plan.refreshed.items()]:
        o = status[pid]
        note = None
        if pid in plan.refreshed and pid not in plan.drafts:
            changed = (plan.freshness.get(pid) or {}).get("refreshed") or []
            note = "numbers refreshed from this run's facts: " + "; ".join(
                f"{s['text_number']} → {s['new_value']}" for s in changed
            )
        elif o.status == "changed" and o.drift is not None:
            note = f"persona changed (drift {o.drift.score:.2f}); redrafted for review"
        written[pid] = next_version(conn, pid)
        conn.execute(
            t.narratives.insert().values(
                persona_id=pid,
                version=written[pid],
                run_id=run_id,
                origin="generated",
                body=jsonable(narrative.model_dump(mode="json")),
                status="draft",
                created_by=author_of(narrative),
                created_at=now,
                note=note[:4000] if note else None,
            )
        )
    _freshness(conn, run_id, plan, written)


def _freshness(conn: sa.Connection, run_id: str, plan: Plan, written: dict[str, int]) -> None:
    """Each carried narrative's number check (v9), against the version it applies to: the
    carried one, or the refreshed draft just written."""
    pr = t.persona_runs
    for pid, record in plan.freshness.items():
        version = record.get("version")
        if version is None and pid in plan.refreshed:
            version = written.get(pid)
        conn.execute(
            pr.update()
            .where(pr.c.run_id == run_id, pr.c.persona_id == pid)
            .values(freshness=jsonable({**record, "version": version}))
        )


def _llm_calls(conn: sa.Connection, run_id: str, calls: list[Any]) -> None:
    rows = []
    for call in calls:
        record = call.model_dump(mode="json") if hasattr(call, "model_dump") else dict(call)
        rows.append(
            {
                "run_id": run_id,
                "persona_id": record.get("persona_id"),
                "seq": record.get("seq"),
                "purpose": record.get("purpose"),
                "model": record.get("model"),
                "status": record.get("status"),
                "latency_ms": record.get("latency_ms"),
                "started_at": record.get("started_at"),
                "record": jsonable(record),
            }
        )
    if rows:
        conn.execute(t.llm_calls.insert(), rows)
