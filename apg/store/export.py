"""Export a run's personas with their current narratives: JSON, Markdown or CSV."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from apg.profiles.confidence import Confidence, confidence_text
from apg.profiles.outcomes import OutcomeStat, outcome_summary
from apg.store.engine import now
from apg.store.queries import current_version, narrative_versions, resolve_run
from apg.store.queries import list_personas as _list
from apg.store.store import Store

CSV_COLUMNS = [
    "persona_id",
    "run_id",
    "status",
    "size",
    "share",
    "name",
    "tagline",
    "summary",
    "goals",
    "frustrations",
    "quote",
    "outcomes",
    "confidence",
    "version",
    "narrative_status",
    "review",
    "reviewed_by",
    "reviewed_at",
]


def export_rows(
    store: Store, *, status: str | None = None, run: str | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """The run's active personas (not retired) whose current narrative has ``status``."""
    with store.read() as conn:
        run_id = resolve_run(conn, run)
        found = [p for p in _list(conn, run_id) if p["status"] != "retired"]
        versions = narrative_versions(conn, [p["persona_id"] for p in found])
    rows = []
    for p in found:
        cur = current_version(versions.get(p["persona_id"], []))
        if status is not None and (cur is None or cur["status"] != status):
            continue
        rows.append({**p, "narrative": cur})
    return run_id, rows


def export_personas(
    store: Store, fmt: str, *, status: str | None = None, run: str | None = None
) -> str:
    run_id, rows = export_rows(store, status=status, run=run)
    if fmt == "json":
        return (
            json.dumps(
                {
                    "run_id": run_id,
                    "exported_at": now(),
                    "status": status,
                    "personas": [_json_row(r) for r in rows],
                },
                indent=2,
                ensure_ascii=False,
            )
            + "\n"
        )
    if fmt == "md":
        return _markdown(run_id, rows)
    if fmt == "csv":
        return _csv(rows)
    raise ValueError(f"unknown export format {fmt!r}")


def _json_row(r: dict[str, Any]) -> dict[str, Any]:
    cur = r["narrative"]
    return {
        "persona_id": r["persona_id"],
        "run_id": r["run_id"],
        "status": r["status"],
        "size": r["size"],
        "share": r["share"],
        "review": r["review"],
        "narrative": None
        if cur is None
        else {
            "version": cur["version"],
            "status": cur["status"],
            "origin": cur["origin"],
            "created_by": cur["created_by"],
            "reviewed_by": cur["reviewed_by"],
            "reviewed_at": cur["reviewed_at"],
            **cur["body"],
        },
        "drift": r["drift"],
        "profile": r["profile"],
    }


def _outcome_lines(r: dict[str, Any]) -> list[str]:
    stats = (r.get("profile") or {}).get("outcomes") or {}
    return [
        text
        for o in stats.values()
        if (text := outcome_summary(OutcomeStat.model_validate(o))) is not None
    ]


def _confidence(r: dict[str, Any]) -> str:
    conf = (r.get("profile") or {}).get("confidence")
    return confidence_text(Confidence.model_validate(conf)) if conf else ""


def _markdown(run_id: str, rows: list[dict[str, Any]]) -> str:
    lines = [f"# Personas of run {run_id}", ""]
    if not rows:
        lines.append("No personas match.")
    for r in rows:
        body = (r["narrative"] or {}).get("body", {})
        cur = r["narrative"]
        lines += [f"## {body.get('name', r['persona_id'])} ({r['persona_id']})", ""]
        if body.get("tagline"):
            lines += [f"*{body['tagline']}*", ""]
        state = f"{cur['status']} v{cur['version']}" if cur else "no narrative"
        if cur and cur["reviewed_by"]:
            state += f" by {cur['reviewed_by']}"
        lines += [f"{r['size']:,} users ({r['share']:.1%}); {r['status']}; narrative {state}", ""]
        if conf := _confidence(r):
            lines += [f"_{conf}_", ""]
        if body.get("summary"):
            lines += [body["summary"], ""]
        if outcomes := _outcome_lines(r):
            lines += ["**Outcomes**", ""] + [f"- {t}" for t in outcomes] + [""]
        for title, key in (("Goals", "goals"), ("Frustrations", "frustrations")):
            if body.get(key):
                lines += [f"**{title}**", ""] + [f"- {i['text']}" for i in body[key]] + [""]
        if body.get("quote"):
            lines += [f"> {body['quote']}", ""]
    return "\n".join(lines).rstrip() + "\n"


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: object) -> object:
    """A text cell a spreadsheet would run as a formula gets a leading apostrophe (OWASP's
    advice for CSV injection): ``=HYPERLINK(...)`` is shown, never evaluated."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        cur = r["narrative"] or {}
        body = cur.get("body", {})
        row = {
            "persona_id": r["persona_id"],
            "run_id": r["run_id"],
            "status": r["status"],
            "size": r["size"],
            "share": f"{r['share']:.6f}",
            "name": body.get("name", ""),
            "tagline": body.get("tagline", ""),
            "summary": body.get("summary", ""),
            "goals": " | ".join(i["text"] for i in body.get("goals", [])),
            "frustrations": " | ".join(i["text"] for i in body.get("frustrations", [])),
            "quote": body.get("quote") or "",
            "outcomes": " | ".join(_outcome_lines(r)),
            "confidence": _confidence(r),
            "version": cur.get("version", ""),
            "narrative_status": cur.get("status", ""),
            "review": r["review"] or "",
            "reviewed_by": cur.get("reviewed_by") or "",
            "reviewed_at": cur.get("reviewed_at") or "",
        }
        writer.writerow({k: spreadsheet_safe(v) for k, v in row.items()})
    return buf.getvalue()
