"""What the pages show, as plain values for the templates: runs, report content, personas,
version diffs and drift. Nothing here writes; review actions go through :mod:`apg.store.review`."""

from __future__ import annotations

import difflib
import re
import threading
from collections import OrderedDict
from typing import Any

from markupsafe import Markup

from apg.narration.labels import fmt_pct
from apg.report.avatars import avatar_svg, persona_colour
from apg.report.data import ReportData
from apg.report.html import _card as report_card  # the report's own view models, reused
from apg.report.html import _charts as report_charts
from apg.report.html import _leaderboard as report_leaderboard
from apg.report.html import _num as report_num
from apg.report.markdown import WEAK_TITLE

CHART_CACHE = 16  # runs whose drawn charts are kept in memory
TOP_SHIFTS = 6
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


class ChartCache:
    """Charts take a while to draw; keep the last few runs' (keyed by run and persona names)."""

    def __init__(self, size: int = CHART_CACHE) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, ...], dict[str, str | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, data: ReportData) -> dict[str, str | None]:
        key = (data.run_id, *(p.narrative.name if p.narrative else "" for p in data.personas))
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        charts = report_charts(data)
        with self._lock:
            self._items[key] = charts
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return charts


def when(stamp: str | None) -> str:
    return (stamp or "")[:16].replace("T", " ")


def chosen(algorithm: str | None, params: dict[str, Any] | None) -> str:
    if not algorithm:
        return "–"
    inner = ", ".join(f"{k}={v}" for k, v in (params or {}).items())
    return f"{algorithm}({inner})"


def run_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in runs:
        out.append(
            {
                "id": r["id"],
                "started": when(r["started_at"]),
                "status": r["status"],
                "error": r.get("error") or r.get("reason"),
                "trigger": r.get("trigger") or "",
                "users": f"{r['rows_used']:,}" if r.get("rows_used") is not None else "–",
                "chosen": chosen(r.get("algorithm"), r.get("params")),
                "silhouette": report_num(r.get("silhouette")),
                "changes": [(s, n) for s, n in r["personas"].items() if n],
            }
        )
    return out


def report_view(data: ReportData, charts: ChartCache) -> dict[str, Any]:
    """The report's persona cards, leaderboard and charts for the run page."""
    winner = data.winner
    return {
        "cards": [report_card(p, i, data) for i, p in enumerate(data.personas)],
        "leaderboard": report_leaderboard(data.candidates),
        "n_eligible": sum(c.eligible for c in data.candidates),
        "charts": charts.get(data),
        "winner_key": winner.key if winner else "–",
        "winner_silhouette": report_num(winner.silhouette) if winner else "–",
        "outliers": data.outliers if data.outliers.size else None,
        "outlier_share": fmt_pct(data.outliers.share),
        "n_users": f"{data.n_users:,}",
        "rows_read": f"{data.rows_read:,}",
        "weak": data.weak,
        "weak_title": WEAK_TITLE,
    }


def persona_rows(personas: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, p in enumerate(personas):
        drift = p.get("drift") or {}
        out.append(
            {
                "id": p["persona_id"],
                "name": p["name"] or "(no narrative)",
                "status": p["status"],
                "review": p["review"] or "none",
                "size": f"{p['size']:,}",
                "share": fmt_pct(p["share"]),
                "drift": f"{drift['score']:.2f}" if drift.get("score") is not None else "",
                "colour": persona_colour(i) if p["status"] != "retired" else "#888888",
                "version": p["version"],
                # Numbers of the shown narrative that this run's facts no longer support.
                "stale": len(p.get("stale") or []),
            }
        )
    return out


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE.split(text.strip()) if s]


def narrative_lines(body: dict[str, Any]) -> list[str]:
    """A narrative as lines of text, one sentence or item per line, for diffs."""
    lines = [f"name: {body.get('name', '')}", f"tagline: {body.get('tagline', '')}", "summary:"]
    lines += [f"  {s}" for s in sentences(str(body.get("summary", "")))]
    for key in ("goals", "frustrations"):
        lines.append(f"{key}:")
        lines += [f"  - {item.get('text', '')}" for item in body.get(key) or []]
    if body.get("quote"):
        lines.append(f"quote: {body['quote']}")
    return lines


def diff_lines(before: dict[str, Any] | None, after: dict[str, Any]) -> list[tuple[str, str]]:
    """``(kind, text)`` pairs of a unified diff: kind is add, del, ctx or gap."""
    old = narrative_lines(before) if before is not None else []
    out: list[tuple[str, str]] = []
    for line in difflib.unified_diff(old, narrative_lines(after), lineterm="", n=1):
        if line.startswith(("---", "+++")):
            continue
        if line.startswith("@@"):
            out.append(("gap", "…"))
        elif line.startswith("+"):
            out.append(("add", line[1:]))
        elif line.startswith("-"):
            out.append(("del", line[1:]))
        else:
            out.append(("ctx", line[1:]))
    return out[1:] if out and out[0][0] == "gap" else out


def version_views(versions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every version, newest first, with its diff against the version before it."""
    out = []
    previous: dict[str, Any] | None = None
    for v in versions:
        out.append(
            {
                "version": v["version"],
                "status": v["status"],
                "origin": v["origin"],
                "created_by": v["created_by"],
                "created_at": when(v["created_at"]),
                "note": v["note"],
                "reviewed_by": v["reviewed_by"],
                "reviewed_at": when(v["reviewed_at"]),
                "review_note": v["review_note"],
                "name": v["body"].get("name", ""),
                "diff": diff_lines(previous, v["body"]),
            }
        )
        previous = v["body"]
    return out[::-1]


def narrative_view(version: dict[str, Any] | None) -> dict[str, Any] | None:
    """A narrative version with each item's cited facts spelled out."""
    if version is None:
        return None
    body = version["body"]
    facts: dict[str, str] = dict(body.get("facts") or {})

    def items(key: str) -> list[dict[str, Any]]:
        return [
            {
                "text": it.get("text", ""),
                "facts": [
                    {"id": f, "text": facts.get(f, "(not in the fact sheet)")}
                    for f in it.get("facts") or []
                ],
            }
            for it in body.get(key) or []
        ]

    cited = {f["id"] for key in ("goals", "frustrations") for it in items(key) for f in it["facts"]}
    validation = body.get("validation") or None
    return {
        "version": version["version"],
        "status": version["status"],
        "origin": version["origin"],
        "created_by": version["created_by"],
        "created_at": when(version["created_at"]),
        "reviewed_by": version["reviewed_by"],
        "reviewed_at": when(version["reviewed_at"]),
        "name": body.get("name", ""),
        "tagline": body.get("tagline", ""),
        "summary": body.get("summary", ""),
        "quote": body.get("quote"),
        "goals": items("goals"),
        "frustrations": items("frustrations"),
        "hypotheses": items("hypotheses"),
        "source": body.get("source"),
        "model": body.get("model"),
        "reason": body.get("reason"),
        "facts": sorted(facts.items(), key=lambda kv: _fact_order(kv[0])),
        "cited": sorted(cited, key=_fact_order),
        "validation": validation_view(validation),
    }


def _fact_order(fact_id: str) -> tuple[int, str]:
    digits = "".join(ch for ch in fact_id if ch.isdigit())
    return (int(digits) if digits else 10**6, fact_id)


def validation_view(validation: dict[str, Any] | None) -> dict[str, Any] | None:
    if not validation:
        return None
    shown = {"ok", "violations"}
    return {
        "ok": validation.get("ok"),
        "violations": [str(v) for v in validation.get("violations") or []],
        "other": [(k, str(v)) for k, v in sorted(validation.items()) if k not in shown],
    }


def drift_view(drift: dict[str, Any] | None) -> dict[str, Any] | None:
    """Drift against the previous run: score, shifts, overlap, size change, top features."""
    if not drift:
        return None
    shifts = sorted((drift.get("feature_shift") or {}).items(), key=lambda kv: -abs(kv[1]))
    top = shifts[:TOP_SHIFTS]
    overlap = drift.get("member_overlap")
    return {
        "score": f"{drift.get('score', 0.0):.2f}",
        "centroid_shift": f"{drift.get('centroid_shift', 0.0):.2f}",
        "member_overlap": fmt_pct(overlap) if overlap is not None else None,
        "size_change": f"{drift.get('size_change', 0):+,d}",
        "share_change": f"{drift.get('share_change', 0.0) * 100:+.1f}",
        "shifts": [
            {
                "feature": k,
                "value": f"{v:+.2f}",
                "width": f"{min(abs(v), 2.0) / 2.0 * 50:.1f}",  # half the bar = 2 SD
                "direction": "higher" if v >= 0 else "lower",
            }
            for k, v in top
        ],
    }


def history_rows(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "run_id": h["run_id"],
            "started": when(h["started_at"]),
            "status": h["status"],
            "size": f"{h['size']:,}",
            "share": fmt_pct(h["share"]),
            "drift": f"{h['drift']['score']:.2f}" if h.get("drift") else "",
            "matched_by": h.get("matched_by") or "",
        }
        for h in history[::-1]
    ]


def persona_avatar(persona_id: str, name: str, index: int) -> Markup:
    return Markup(avatar_svg(persona_id, name, persona_colour(index), 0.0))


def edit_values(body: dict[str, Any]) -> dict[str, str]:
    """The edit form's fields from a narrative body (lists one item per line)."""
    return {
        "name": str(body.get("name", "")),
        "tagline": str(body.get("tagline", "")),
        "summary": str(body.get("summary", "")),
        "quote": str(body.get("quote") or ""),
        "goals": "\n".join(str(i.get("text", "")) for i in body.get("goals") or []),
        "frustrations": "\n".join(str(i.get("text", "")) for i in body.get("frustrations") or []),
    }


def edit_changes(form: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    """The fields the reviewer changed, in the shape :func:`apg.store.review.edit` takes."""
    before = edit_values(body)
    changes: dict[str, Any] = {}
    for key in ("name", "tagline", "summary", "quote"):
        value = form.get(key, before[key]).strip()
        if value != before[key].strip():
            changes[key] = (value or None) if key == "quote" else value
    for key in ("goals", "frustrations"):
        lines = [ln.strip() for ln in form.get(key, before[key]).splitlines() if ln.strip()]
        if lines != [ln.strip() for ln in before[key].splitlines() if ln.strip()]:
            changes[key] = lines
    return changes
