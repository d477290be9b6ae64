"""report.html: one self-contained page per run (no network, no CDN, CSS and JS inline).

Two steps so the page can be rebuilt from stored data later (``apg report RUN``):
``report_data_from_result(result)`` gathers plain inputs into a :class:`ReportData` (profiles,
the leaderboard, the elbow curve, fact texts and a seeded sample of the clustered matrix), and
``render_html(data)`` draws the charts (``apg.report.charts``) and fills the Jinja2 template with
autoescaping on, so every value from the data or a model is shown as text.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any

import numpy as np
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape

from apg.narration.display import Labels
from apg.narration.fact_contrasts import key_contrasts
from apg.narration.facts import OTHER, FactSheet, build_fact_sheet, merge_small
from apg.narration.freshness import Stale, fact_map, stale_numbers
from apg.narration.labels import fmt, fmt_pct
from apg.profiles.confidence import confidence_text
from apg.profiles.outcomes import outcome_summary
from apg.profiles.persona import CategoryContrast, PersonaProfile
from apg.report.avatars import avatar_svg, persona_colour
from apg.report.data import CandidateRow, ReportData
from apg.report.markdown import WEAK_TITLE
from apg.search.leaderboard import sample_rows

if TYPE_CHECKING:
    pass

SILHOUETTE_SAMPLE = 3000
TREE_SAMPLE = 2000
KEY_NUMBERS = 5
DEMOGRAPHIC_BARS = 4


def _num(x: float | None, digits: int = 3) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{x:,.{digits}f}"


def _sort_value(x: float | None) -> str:
    return "" if x is None or not math.isfinite(x) else repr(float(x))


def _title(p: PersonaProfile) -> str:
    return (
        p.narrative.name if p.narrative and p.narrative.name.strip() else f"Persona {p.persona_id}"
    )


def _mood(p: PersonaProfile) -> float:
    att = [c.std_diff for c in p.contrasts if c.role == "attitudinal"]
    return float(np.clip(np.mean(att) / 1.2, -1, 1)) if att else 0.0


def _items(
    items: list[Any],
    key: str,
    facts: dict[str, str],
    ids: dict[str, str],
    stale: list[Stale],
) -> list[dict[str, Any]]:
    """Goals or frustrations with their evidence; ``ids`` maps the ids a carried narrative
    cites to this run's (ids follow the contrasts' order, which changes between runs)."""
    out = []
    for i, it in enumerate(items, 1):
        cited = [ids.get(f, f) for f in it.facts]
        out.append(
            {
                "text": marked(it.text, [s for s in stale if s.field == f"{key}[{i}]"]),
                "facts": [
                    {"id": f, "text": facts.get(f, "(not in the fact sheet)")} for f in cited
                ],
            }
        )
    return out


def marked(text: str, stale: list[Stale]) -> str:
    """``text`` with each stale number in a ``<mark>`` saying its current value (escaped
    Markup), or ``text`` itself when nothing in it is stale."""
    if not stale:
        return text
    out, pos = Markup(""), 0
    for s in sorted(stale, key=lambda s: s.start):
        now = f"now {s.new_value}" if s.new_value else "no longer on this run's fact sheet"
        out += escape(text[pos : s.start])
        out += Markup('<mark class="stale" title="{}">{}</mark>').format(
            f"stale: {now}", s.text_number
        )
        pos = s.start + len(s.text_number)
    return out + escape(text[pos:])


def sheet_of(p: PersonaProfile, data: ReportData) -> FactSheet:
    """This run's fact sheet of ``p``, as the narrators built it."""
    roles = {col: role for role, cols in data.features.items() for col in cols}
    return build_fact_sheet(
        p,
        n_users=data.n_users,
        outliers=data.outliers if data.outliers.size else None,
        feature_roles=roles,
        min_cell=data.min_cell,
        significance=data.significance,
        labels=data.labels,
    )


def stale_view(stale: list[Stale]) -> list[dict[str, Any]]:
    """Stale numbers for a card: where, as written, and what the run's facts say now."""
    return [
        {
            "field": s.field,
            "number": s.text_number,
            "old": s.old_value,
            "new": s.new_value,
            "text": s.describe(),
        }
        for s in stale
    ]


def _key_numbers(
    p: PersonaProfile, min_cell: int = 5, labels: Labels | None = None
) -> list[dict[str, Any]]:
    """The strongest contrasts, numeric features and categories ranked together (in SDs of
    everyone; a category by its 0/1 indicator): a category shows its shares. Display names
    and value labels from the config's ``labels:``."""
    names = labels or Labels()
    out = []
    for c in key_contrasts(p, KEY_NUMBERS, min_cell=min_cell):
        sd, label = c.std_diff, names.title(c.feature)
        if isinstance(c, CategoryContrast):
            value = names.value_label(c.feature, c.value)
            label, shown = f"{label}: {value}", (fmt_pct(c.share), fmt_pct(c.population_share))
        else:
            shown = (fmt(c.cluster_mean), fmt(c.population_mean))
        out.append(
            {
                "label": label,
                "feature": c.feature,
                "role": c.role,
                "persona": shown[0],
                "everyone": shown[1],
                "category": isinstance(c, CategoryContrast),
                "sd": f"{sd:+.2f}",
                "direction": c.direction,
                "width": f"{min(abs(sd), 2.0) / 2.0 * 50:.1f}",  # % of the bar; half the bar = 2 SD
            }
        )
    return out


def _demographics(
    p: PersonaProfile, min_cell: int, labels: Labels | None = None
) -> list[dict[str, Any]]:
    """Demographic rows of a card: display names, value labels and number formats."""
    shown = labels or Labels()
    out = []
    for col, demo in p.demographics.items():
        entry: dict[str, Any] = {
            "label": shown.title(col),
            "column": col,
            "kind": demo.kind,
        }
        if demo.kind == "date":
            cd, pd_ = demo.cluster_dates, demo.population_dates
            if cd is None or cd.median is None or p.size < min_cell:
                continue
            entry["kind"] = "numeric"  # shown like a number: median, middle half, everyone
            entry["median"] = cd.median
            entry["range"] = f"{cd.q1}–{cd.q3}"
            entry["everyone"] = pd_.median if pd_ and pd_.median else "–"
            out.append(entry)
            continue
        if demo.kind == "numeric":
            cl, pop = demo.cluster, demo.population
            if cl is None or cl.median is None or p.size < min_cell:
                continue
            entry["median"] = shown.format_value(col, cl.median)
            entry["range"] = (
                f"{shown.format_value(col, cl.q1)}–{shown.format_value(col, cl.q3)}"
                if cl.q1 is not None and cl.q3 is not None
                else ""
            )
            entry["everyone"] = shown.format_value(col, pop.median if pop else None)
        else:
            cats = merge_small(demo.categories, min_cell)[:DEMOGRAPHIC_BARS]
            if not cats:
                continue
            entry["bars"] = [
                {
                    "value": c.value if c.value == OTHER else shown.value_label(col, c.value),
                    "share": fmt_pct(c.share),
                    "width": f"{c.share * 100:.1f}",
                    "population": f"{c.population_share * 100:.1f}",
                    "population_text": fmt_pct(c.population_share),
                }
                for c in cats
            ]
        out.append(entry)
    return out


def _card(p: PersonaProfile, index: int, data: ReportData) -> dict[str, Any]:
    n = p.narrative
    facts = data.facts.get(p.persona_id, {})
    colour = persona_colour(index)
    name = _title(p)
    # A narrative carried over from an earlier run: its numbers checked against this run.
    stale: list[Stale] = []
    ids: dict[str, str] = {}
    if n is not None and n.facts != facts:
        sheet = sheet_of(p, data)
        stale, ids = stale_numbers(n, sheet), fact_map(n, sheet)

    def field(key: str, text: str) -> str:
        return marked(text, [s for s in stale if s.field == key])

    return {
        "id": p.persona_id,
        "anchor": f"persona-{index + 1}",
        "name": name,
        "colour": colour,
        "avatar": Markup(avatar_svg(p.persona_id, name, colour, _mood(p))),  # escapes the name
        "tagline": field("tagline", n.tagline) if n else "",
        "summary": field("summary", n.summary) if n else "",
        "quote": field("quote", n.quote) if n and n.quote else None,
        "source": n.source if n else None,
        "reason": n.reason if n else None,
        "goals": _items(n.goals, "goals", facts, ids, stale) if n else [],
        "frustrations": _items(n.frustrations, "frustrations", facts, ids, stale) if n else [],
        "stale": stale_view(stale),
        "confidence": p.confidence.level if p.confidence else None,
        "confidence_text": confidence_text(p.confidence) if p.confidence else "",
        "size": f"{p.size:,}",
        "share": fmt_pct(p.share),
        "share_width": f"{p.share * 100:.1f}",
        "key_numbers": _key_numbers(p, data.min_cell, data.labels),
        "demographics": _demographics(p, data.min_cell, data.labels),
        "outcomes": [t for o in p.outcomes.values() if (t := outcome_summary(o))]
        if p.size >= data.min_cell
        else [],
    }


def _leaderboard(rows: list[CandidateRow]) -> list[dict[str, Any]]:
    out = []
    for c in sorted(rows, key=lambda r: r.rank):
        out.append(
            {
                "rank": c.rank,
                "key": c.key,
                "selected": c.selected,
                "n_clusters": c.n_clusters,
                "cells": [
                    (_num(c.silhouette), _sort_value(c.silhouette)),
                    (
                        "–" if c.stability is None else _num(c.stability),
                        "" if c.stability is None else _sort_value(c.stability),
                    ),
                    (_num(c.davies_bouldin), _sort_value(c.davies_bouldin)),
                    (_num(c.calinski_harabasz, 1), _sort_value(c.calinski_harabasz)),
                    (fmt_pct(c.noise_share), _sort_value(c.noise_share)),
                    (fmt_pct(c.min_cluster_share), _sort_value(c.min_cluster_share)),
                ],
                "eligible": c.eligible,
                "reason": c.reason,
            }
        )
    return out


def _series_of(c: CandidateRow) -> str:
    """The line a candidate belongs to in the candidates chart."""
    if c.algorithm == "agglomerative":
        return str(c.params.get("linkage"))
    if c.algorithm == "dbscan":
        return f"min_samples={c.params.get('min_samples')}"
    return c.algorithm


def _charts(data: ReportData) -> dict[str, str | None]:
    from apg.report import charts

    series = [
        charts.Series(p.cluster, p.persona_id, f"{p.persona_id} {_title(p)}", persona_colour(i))
        for i, p in enumerate(data.personas)
    ]
    points = [
        charts.CandidatePoint(
            c.algorithm,
            _series_of(c),
            c.n_clusters,
            c.silhouette,
            c.eligible,
            c.selected,
        )
        for c in data.candidates
        if math.isfinite(c.silhouette)
    ]
    out: dict[str, str | None] = {
        "elbow": charts.elbow_chart(data.wcss, data.elbow_k),
        "candidates": charts.candidate_chart(points),
        "silhouette": None,
        "map": None,
        "tree": None,
    }
    X, labels = data.sample_X, data.sample_labels
    if X is not None and labels is not None and len(X):
        total = max(data.n_users, len(X))
        members = np.flatnonzero(labels >= 0)
        sil = members[sample_rows(len(members), SILHOUETTE_SAMPLE, data.seed)]
        tree = sample_rows(len(X), TREE_SAMPLE, data.seed)
        out["silhouette"] = charts.silhouette_plot(
            X[sil], labels[sil], series, total - data.outliers.size
        )
        out["map"] = charts.projection_map(X, labels, series, total, data.seed)
        out["tree"] = charts.dendrogram_chart(
            X[tree], labels[tree], series, data.tree_linkage, total
        )
    return out


@functools.cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("apg.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_html(data: ReportData) -> str:
    """The page as one string: same input, same bytes."""
    winner = data.winner
    context = {
        "data": data,
        "winner": winner,
        "winner_key": winner.key if winner else "–",
        "winner_silhouette": _num(winner.silhouette) if winner else "–",
        "winner_noise": fmt_pct(winner.noise_share) if winner else "–",
        "cards": [_card(p, i, data) for i, p in enumerate(data.personas)],
        "outliers": data.outliers if data.outliers.size else None,
        "outlier_share": fmt_pct(data.outliers.share),
        "outlier_contrasts": [
            {"label": data.labels.title(c.feature), "sd": f"{c.std_diff:+.2f}"}
            for c in data.outliers.contrasts[:4]
        ],
        "leaderboard": _leaderboard(data.candidates),
        "n_eligible": sum(c.eligible for c in data.candidates),
        "charts": _charts(data),
        "n_users": f"{data.n_users:,}",
        "rows_read": f"{data.rows_read:,}",
        "weak_title": WEAK_TITLE,
    }
    return _environment().get_template("report.html.j2").render(context)
