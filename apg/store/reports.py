"""Report data of a run (``apg_reports``): what ``report.html`` needs, stored with the run.

``apg report RUN`` and the web pages rebuild the page from it. The document is JSON: the
:class:`~apg.report.data.ReportData` fields, with the seeded sample of the clustered matrix and
its labels as base64 ``.npy`` arrays (read back with ``allow_pickle=False``; never pickle).
Runs recorded before schema version 5 have no document: :func:`load_report` then rebuilds what
the other tables hold (personas, leaderboard, elbow curve, facts) and says which charts are
missing (the silhouette plot, the map and the tree need the sample).
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import numpy as np
import pydantic
import sqlalchemy as sa

from apg.errors import NotFoundError
from apg.narration.display import Labels
from apg.narration.facts import build_fact_sheet
from apg.profiles.narrative import Narrative
from apg.profiles.persona import OutlierProfile, PersonaProfile
from apg.report.data import CandidateRow, ReportData
from apg.search.candidates import Candidate
from apg.search.selection import elbow, rank_key
from apg.store import queries
from apg.store import schema as t
from apg.store.schema import jsonable

FORMAT = 1
_FLOATS = (
    "silhouette",
    "davies_bouldin",
    "calinski_harabasz",
    "noise_share",
    "min_cluster_share",
)
MISSING_SAMPLE = (
    "run {run} was recorded before apg stored report data (schema version 5): the silhouette "
    "plot, the map of users and the hierarchical tree are unavailable"
)
_NO_CONTENT = {
    "failed": "it failed",
    "running": "it is still running",
    "unchanged": "its data and settings were unchanged, so it clustered nothing",
    "interrupted": "it was interrupted",
}


@dataclass
class LoadedReport:
    """Report data of a run and what could not be rebuilt (empty when complete)."""

    data: ReportData
    missing: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.missing


def encode_array(a: np.ndarray | None) -> str | None:
    if a is None:
        return None
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def decode_array(text: str | None) -> np.ndarray | None:
    if text is None:
        return None
    return np.load(io.BytesIO(base64.b64decode(text)), allow_pickle=False)


def to_document(data: ReportData) -> dict[str, Any]:
    """ReportData as plain JSON values (non-finite floats become null)."""
    return {
        "format": FORMAT,
        **jsonable(
            {
                "run_id": data.run_id,
                "created_at": data.created_at,
                "personas": [p.model_dump(mode="json") for p in data.personas],
                "outliers": data.outliers.model_dump(mode="json"),
                "candidates": [asdict(c) for c in data.candidates],
                "wcss": {str(k): v for k, v in data.wcss.items()},
                "elbow_k": data.elbow_k,
                "n_users": data.n_users,
                "rows_read": data.rows_read,
                "features": data.features,
                "facts": data.facts,
                "tree_linkage": data.tree_linkage,
                "seed": data.seed,
                "min_cell": data.min_cell,
                "significance": data.significance,
                "labels": data.labels.to_config(),
                "version": data.version,
                "weak": data.weak,
            }
        ),
        "sample_X": encode_array(data.sample_X),
        "sample_labels": encode_array(data.sample_labels),
    }


def _candidate(row: dict[str, Any]) -> CandidateRow:
    values = {**row}
    for key in _FLOATS:
        values[key] = math.nan if values.get(key) is None else float(values[key])
    # None: not refitted (or recorded before stability existed), unlike a NaN score.
    values["stability"] = None if values.get("stability") is None else float(values["stability"])
    return CandidateRow(**values)


def from_document(doc: dict[str, Any]) -> ReportData:
    """The inverse of :func:`to_document`."""
    if doc.get("format") != FORMAT:
        raise ValueError(f"report data format {doc.get('format')!r}, expected {FORMAT}")
    return ReportData(
        run_id=doc["run_id"],
        created_at=doc["created_at"],
        personas=[PersonaProfile.model_validate(p) for p in doc["personas"]],
        outliers=OutlierProfile.model_validate(doc["outliers"]),
        candidates=[_candidate(c) for c in doc["candidates"]],
        wcss={int(k): float(v) for k, v in doc["wcss"].items() if v is not None},
        elbow_k=doc["elbow_k"],
        n_users=int(doc["n_users"]),
        rows_read=int(doc["rows_read"]),
        features={k: list(v) for k, v in doc["features"].items()},
        facts={k: dict(v) for k, v in doc["facts"].items()},
        sample_X=decode_array(doc.get("sample_X")),
        sample_labels=decode_array(doc.get("sample_labels")),
        tree_linkage=doc["tree_linkage"],
        seed=int(doc["seed"]),
        min_cell=int(doc["min_cell"]),
        significance=float(doc.get("significance", 0.05)),
        labels=Labels.from_config(doc.get("labels")),
        version=doc["version"],
        weak=[str(w) for w in doc.get("weak") or []],
    )


def write_report(conn: sa.Connection, data: ReportData) -> None:
    """Store the report data of a run (inside the caller's write transaction)."""
    conn.execute(t.reports.insert().values(run_id=data.run_id, data=to_document(data)))


def _rebuild(conn: sa.Connection, run_id: str) -> ReportData:
    """Report data from the run's other tables (no sample of the matrix)."""
    run = conn.execute(sa.select(t.runs).where(t.runs.c.id == run_id)).one()._mapping
    config = run["config"] or {}
    summary = run["summary"] or {}
    pr = t.persona_runs
    profiles = conn.execute(
        sa.select(pr.c.profile)
        .where(pr.c.run_id == run_id, pr.c.status != "retired", pr.c.profile.is_not(None))
        .order_by(pr.c.rank, pr.c.persona_id)
    ).scalars()
    personas = [PersonaProfile.model_validate(p) for p in profiles]
    outliers = OutlierProfile.model_validate(summary.get("outliers") or {"size": 0, "share": 0.0})
    c = t.candidates
    stored = [
        dict(r._mapping)
        for r in conn.execute(sa.select(c).where(c.c.run_id == run_id).order_by(c.c.idx))
    ]
    rows = [
        _candidate(
            {
                **{k: s[k] for k in ("algorithm", "params", "n_clusters", "stability", *_FLOATS)},
                "eligible": bool(s["eligible"]),
                "reason": s["reason"] or "",
                "selected": bool(s["selected"]),
            }
        )
        for s in stored
    ]
    order = sorted(range(len(rows)), key=lambda i: rank_key(cast(Candidate, rows[i]), i))
    for pos, i in enumerate(order, start=1):
        rows[i].rank = pos
    wcss = {
        int(s["n_clusters"]): float(s["inertia"])
        for s in stored
        if s["algorithm"] == "kmeans" and s["inertia"] is not None
    }
    features = {
        role: list((config.get("features") or {}).get(role) or [])
        for role in ("behavioral", "attitudinal", "demographic")
    }
    roles = {col: role for role in ("behavioral", "attitudinal") for col in features[role]}
    min_cell = int((config.get("narration") or {}).get("min_cell", 5))
    level = float((config.get("narration") or {}).get("significance", 0.05))
    labels = Labels.from_config(config.get("labels"))
    n_users = int(run["rows_used"] or sum(p.size for p in personas) + outliers.size)
    facts = {
        p.persona_id: build_fact_sheet(
            p,
            n_users=n_users,
            outliers=outliers if outliers.size else None,
            feature_roles=roles,
            min_cell=min_cell,
            significance=level,
            labels=labels,
        ).as_dict()
        for p in personas
    }
    params = run["params"] or {}
    return ReportData(
        run_id=run_id,
        created_at=(run["finished_at"] or run["started_at"])[:19] + "Z",
        personas=personas,
        outliers=outliers,
        candidates=rows,
        wcss=wcss,
        elbow_k=elbow(wcss),
        n_users=n_users,
        rows_read=int(run["rows_read"] or 0),
        features=features,
        facts=facts,
        tree_linkage=str(params.get("linkage", "ward"))
        if run["algorithm"] == "agglomerative"
        else "ward",
        seed=int((config.get("search") or {}).get("seed", 0)),
        min_cell=min_cell,
        significance=level,
        labels=labels,
        version=run["apg_version"],
        weak=[str(w) for w in (summary.get("selection") or {}).get("structure_reasons") or []],
    )


def _with_narratives(conn: sa.Connection, data: ReportData, cutoff: str | None) -> None:
    """Give each persona its current narrative (latest approved, else latest draft), or the
    one that was current when the run finished (``cutoff``: its finish time)."""
    versions = queries.narrative_versions(conn, [p.persona_id for p in data.personas])
    for p in data.personas:
        v = versions.get(p.persona_id, [])
        if cutoff is not None:
            v = [x for x in v if x["created_at"] <= cutoff]
        chosen = queries.current_version(v)
        if chosen is None:
            continue
        try:
            p.narrative = Narrative.model_validate(chosen["body"])
        except pydantic.ValidationError:
            continue  # written by another apg version: keep what the report data holds


def load_report(conn: sa.Connection, run_id: str, *, as_recorded: bool = False) -> LoadedReport:
    """The report data of a run with personas, with each persona's current narrative.

    ``as_recorded=True`` keeps the narratives as the run wrote them instead.
    """
    run = conn.execute(
        sa.select(t.runs.c.status, t.runs.c.reason, t.runs.c.finished_at).where(
            t.runs.c.id == run_id
        )
    ).first()
    if run is None or run.status not in queries.WITH_CONTENT:
        status = run.status if run else "unknown"
        what = _NO_CONTENT.get(status, f"its status is {status}")
        why = f" ({run.reason})" if run is not None and run.reason else ""
        raise NotFoundError(f"run {run_id} has no personas to report: {what}{why}")
    doc = conn.execute(sa.select(t.reports.c.data).where(t.reports.c.run_id == run_id)).scalar()
    missing: list[str] = []
    data = None
    if doc is not None:
        try:
            data = from_document(doc)
        except (KeyError, TypeError, ValueError, pydantic.ValidationError) as exc:
            missing.append(
                f"the stored report data of run {run_id} could not be read "
                f"({type(exc).__name__}); rebuilt without the sample-based charts"
            )
    if data is None:
        data = _rebuild(conn, run_id)
        if not missing:
            missing.append(MISSING_SAMPLE.format(run=run_id))
    if not (as_recorded and all(p.narrative is not None for p in data.personas)):
        _with_narratives(conn, data, run.finished_at if as_recorded else None)
    return LoadedReport(data, missing)
