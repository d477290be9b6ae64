"""Reads: runs, personas, narrative versions, the previous run for matching, stored models.

A persona's narrative is versioned; each version is ``draft``, ``approved`` or ``rejected``.
Its **current** narrative is the latest approved version, else the latest draft (else the
latest version); its **review state** is the status of its latest version, so a persona with
approved text and a newer draft is ``draft``: waiting for review.
"""

from __future__ import annotations

import difflib
from collections import defaultdict
from typing import Any

import numpy as np
import pydantic
import sqlalchemy as sa

from apg.errors import NotFoundError, listing
from apg.profiles.identity import PreviousPersona, PreviousRun
from apg.profiles.narrative import Narrative
from apg.search.model_io import StoredModel
from apg.store import schema as t

LATEST = "latest"


def not_found(kind: str, ref: str, known: list[str]) -> NotFoundError:
    close = difflib.get_close_matches(ref, known, n=3, cutoff=0.5)
    if close:
        return NotFoundError(f"no {kind} {ref!r}; did you mean {', '.join(map(repr, close))}?")
    if not known:
        return NotFoundError(
            f"no {kind} {ref!r}: the database has no {kind}s yet; run `apg run` first"
        )
    return NotFoundError(f"no {kind} {ref!r}; known {kind}s: {listing(known, 8)}")


# Runs that recorded personas: a degraded run succeeded with some offline-fallback narratives.
WITH_CONTENT = ("succeeded", "degraded")


def latest_run_id(conn: sa.Connection) -> str | None:
    """The newest run that recorded personas (succeeded or degraded)."""
    r = t.runs
    return conn.execute(
        sa.select(r.c.id)
        .where(r.c.status.in_(WITH_CONTENT))
        .order_by(r.c.started_at.desc(), r.c.id.desc())
        .limit(1)
    ).scalar()


def resolve_run(conn: sa.Connection, ref: str | None) -> str:
    """A run id from ``ref`` (``None`` or ``latest``: the latest succeeded run)."""
    if ref is None or ref == LATEST:
        found = latest_run_id(conn)
        if found is None:
            raise NotFoundError("the database has no successful run yet; run `apg run` first")
        return found
    if conn.execute(sa.select(t.runs.c.id).where(t.runs.c.id == ref)).first():
        return ref
    known = list(
        conn.execute(sa.select(t.runs.c.id).order_by(t.runs.c.started_at.desc())).scalars()
    )
    raise not_found("run", ref, known)


def resolve_persona(conn: sa.Connection, ref: str) -> str:
    known = list(conn.execute(sa.select(t.personas.c.id).order_by(t.personas.c.id)).scalars())
    if ref in known:
        return ref
    folded = [k for k in known if k.lower() == ref.strip().lower()]
    if len(folded) == 1:
        return folded[0]
    raise not_found("persona", ref, known)


def _version_dict(row: sa.Row[Any]) -> dict[str, Any]:
    m = row._mapping
    return {
        k: m[k]
        for k in (
            "persona_id",
            "version",
            "status",
            "origin",
            "created_by",
            "created_at",
            "note",
            "reviewed_by",
            "reviewed_at",
            "review_note",
            "run_id",
            "body",
        )
    }


def narrative_versions(
    conn: sa.Connection, persona_ids: list[str] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Every narrative version per persona, oldest first."""
    n = t.narratives
    query = sa.select(n).order_by(n.c.persona_id, n.c.version)
    if persona_ids is not None:
        query = query.where(n.c.persona_id.in_(persona_ids))
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in conn.execute(query):
        out[row.persona_id].append(_version_dict(row))
    return out


def current_version(versions: list[dict[str, Any]]) -> dict[str, Any] | None:
    for status in ("approved", "draft"):
        found = [v for v in versions if v["status"] == status]
        if found:
            return found[-1]
    return versions[-1] if versions else None


def review_state(versions: list[dict[str, Any]]) -> str | None:
    return versions[-1]["status"] if versions else None


def pending_draft(versions: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The latest version when it is a draft newer than the current (approved) one."""
    current = current_version(versions)
    if versions and versions[-1]["status"] == "draft" and versions[-1] is not current:
        return versions[-1]
    return None


def _run_dict(row: sa.Row[Any]) -> dict[str, Any]:
    return dict(row._mapping)


def list_runs(conn: sa.Connection, limit: int | None = None) -> list[dict[str, Any]]:
    r, pr = t.runs, t.persona_runs
    heavy = {"config", "summary", "feature_stats"}
    query = sa.select(*[c for c in r.c if c.name not in heavy]).order_by(
        r.c.started_at.desc(), r.c.id.desc()
    )
    if limit:
        query = query.limit(limit)
    runs = [_run_dict(row) for row in conn.execute(query)]
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for run_id, status, n in conn.execute(
        sa.select(pr.c.run_id, pr.c.status, sa.func.count()).group_by(pr.c.run_id, pr.c.status)
    ):
        counts[run_id][status] = int(n)
    for run in runs:
        run["personas"] = {
            s: counts[run["id"]].get(s, 0) for s in ("new", "continuing", "changed", "retired")
        }
    return runs


def run_detail(conn: sa.Connection, run_id: str) -> dict[str, Any]:
    run = _run_dict(conn.execute(sa.select(t.runs).where(t.runs.c.id == run_id)).one())
    c = t.candidates
    run["candidates"] = [
        dict(row._mapping)
        for row in conn.execute(sa.select(c).where(c.c.run_id == run_id).order_by(c.c.idx))
    ]
    for cand in run["candidates"]:
        cand.pop("run_id", None)
    run["personas"] = list_personas(conn, run_id)
    run["llm_calls"] = int(
        conn.execute(
            sa.select(sa.func.count())
            .select_from(t.llm_calls)
            .where(t.llm_calls.c.run_id == run_id)
        ).scalar()
        or 0
    )
    doc = conn.execute(sa.select(t.models.c.document).where(t.models.c.run_id == run_id)).scalar()
    run["model"] = None
    if doc is not None:
        model = StoredModel.from_json(doc)
        run["model"] = {
            "algorithm": model.algorithm,
            "rule": model.cluster.kind,
            "training_agreement": model.training_agreement,
        }
    return run


def list_personas(
    conn: sa.Connection, run_id: str, status: str | None = None
) -> list[dict[str, Any]]:
    """The personas of a run (retired ones last); ``status`` filters by review state."""
    pr = t.persona_runs
    rows = [
        dict(row._mapping)
        for row in conn.execute(
            sa.select(pr)
            .where(pr.c.run_id == run_id)
            .order_by(pr.c.rank.is_(None), pr.c.rank, pr.c.persona_id)
        )
    ]
    versions = narrative_versions(conn, [r["persona_id"] for r in rows])
    out = []
    for row in rows:
        v = versions.get(row["persona_id"], [])
        current = current_version(v)
        state = review_state(v)
        if status is not None and state != status:
            continue
        out.append(
            {
                "persona_id": row["persona_id"],
                "run_id": run_id,
                "status": row["status"],
                "rank": row["rank"],
                "cluster": row["cluster"],
                "size": row["size"],
                "share": row["share"],
                "name": current["body"].get("name") if current else None,
                "review": state,
                "version": current["version"] if current else None,
                "narrative_status": current["status"] if current else None,
                "drift": row["drift"],
                "matched_by": row["matched_by"],
                "similarity": row["similarity"],
                "profile": row["profile"],
                "stale": stale_numbers(row["freshness"], current),
            }
        )
    return out


def stale_numbers(
    freshness: dict[str, Any] | None, version: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The numbers of ``version`` a run found stale (``apg.narration.freshness.Stale`` as
    dicts): the run's check applies only to the version it checked, so a later edit or a
    refreshed draft is never shown with an earlier version's stale numbers."""
    if not freshness or version is None or freshness.get("version") != version["version"]:
        return []
    return list(freshness.get("stale") or [])


def persona_history(conn: sa.Connection, persona_id: str) -> list[dict[str, Any]]:
    pr, r = t.persona_runs, t.runs
    query = (
        sa.select(
            pr.c.run_id,
            r.c.started_at,
            pr.c.status,
            pr.c.size,
            pr.c.share,
            pr.c.rank,
            pr.c.drift,
            pr.c.matched_by,
            pr.c.similarity,
            pr.c.freshness,
        )
        .join(r, r.c.id == pr.c.run_id)
        .where(pr.c.persona_id == persona_id)
        .order_by(r.c.started_at, r.c.id)
    )
    return [dict(row._mapping) for row in conn.execute(query)]


def persona_detail(conn: sa.Connection, persona_id: str) -> dict[str, Any]:
    versions = narrative_versions(conn, [persona_id]).get(persona_id, [])
    history = persona_history(conn, persona_id)
    current = current_version(versions)
    draft = pending_draft(versions)
    latest = history[-1] if history else None
    profile = None
    for h in reversed(history):
        if h["status"] != "retired":
            profile = conn.execute(
                sa.select(t.persona_runs.c.profile).where(
                    t.persona_runs.c.run_id == h["run_id"],
                    t.persona_runs.c.persona_id == persona_id,
                )
            ).scalar()
            break
    # The latest run's check of the carried narrative's numbers (None: not carried there).
    freshness = latest["freshness"] if latest and latest["status"] != "retired" else None
    draft_drift = None
    if draft is not None and draft["run_id"]:
        draft_drift = next((h["drift"] for h in history if h["run_id"] == draft["run_id"]), None)
    return {
        "persona_id": persona_id,
        "status": latest["status"] if latest else None,
        "latest_run": latest["run_id"] if latest else None,
        "review": review_state(versions),
        "narrative": current,
        "pending_draft": draft,
        "pending_draft_drift": draft_drift,
        "versions": len(versions),
        "history": history,
        "profile": profile,
        "freshness": freshness,
        "stale": stale_numbers(freshness, current),
        "pending_draft_stale": stale_numbers(freshness, draft),
    }


def _narrative(body: Any) -> Narrative | None:
    try:
        return Narrative.model_validate(body)
    except pydantic.ValidationError:
        return None  # written by another apg version: narrate again rather than fail


def load_previous(conn: sa.Connection) -> PreviousRun | None:
    """The latest successful run, as identity matching needs it (None: no run yet)."""
    run_id = latest_run_id(conn)
    if run_id is None:
        return None
    run = conn.execute(sa.select(t.runs.c.feature_stats).where(t.runs.c.id == run_id)).one()
    pr = t.persona_runs
    rows = conn.execute(
        sa.select(pr)
        .where(pr.c.run_id == run_id, pr.c.status != "retired", pr.c.cluster.is_not(None))
        .order_by(pr.c.rank)
    ).all()
    versions = narrative_versions(conn, [row.persona_id for row in rows])
    personas = []
    for row in rows:
        v = versions.get(row.persona_id, [])
        current = current_version(v)
        profile = row.profile or {}
        personas.append(
            PreviousPersona(
                persona_id=row.persona_id,
                cluster=int(row.cluster),
                size=int(row.size),
                share=float(row.share),
                centroid=dict(profile.get("centroid") or {}),
                categories=dict(profile.get("categories") or {}),
                narrative=_narrative(current["body"]) if current else None,
                approved=bool(current and current["status"] == "approved"),
                version=current["version"] if current else None,
                status=current["status"] if current else None,
                origin=current["origin"] if current else None,
            )
        )
    m = t.members
    members = conn.execute(sa.select(m.c.user_id, m.c.cluster).where(m.c.run_id == run_id)).all()
    stats = {
        k: (float(v[0]), float(v[1]))
        for k, v in (run.feature_stats or {}).items()
        if v and v[0] is not None and v[1] is not None
    }
    return PreviousRun(
        run_id=run_id,
        user_ids=np.array([u for u, _ in members], dtype=str),
        clusters=np.array([c for _, c in members], dtype=np.intp),
        feature_stats=stats,
        personas=personas,
    )


def taken_persona_ids(conn: sa.Connection) -> set[str]:
    return set(conn.execute(sa.select(t.personas.c.id)).scalars())


def load_model(conn: sa.Connection, run_id: str) -> tuple[StoredModel, dict[int, str], str]:
    """The stored model of a run, its cluster -> persona id map, and its id column."""
    doc = conn.execute(sa.select(t.models.c.document).where(t.models.c.run_id == run_id)).scalar()
    if doc is None:
        raise NotFoundError(f"run {run_id!r} has no stored model (it failed or predates models)")
    pr = t.persona_runs
    mapping = {
        int(c): p
        for c, p in conn.execute(
            sa.select(pr.c.cluster, pr.c.persona_id).where(
                pr.c.run_id == run_id, pr.c.cluster.is_not(None)
            )
        )
    }
    config = conn.execute(sa.select(t.runs.c.config).where(t.runs.c.id == run_id)).scalar()
    id_column = str((config or {}).get("id_column", "user_id"))
    return StoredModel.from_json(doc), mapping, id_column
