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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape

from apg.narration.facts import FactSheet, build_fact_sheet, merge_small
from apg.narration.freshness import Stale, fact_map, stale_numbers
from apg.narration.labels import capitalise, fmt, fmt_pct, humanise
from apg.profiles.confidence import confidence_text
from apg.profiles.outcomes import outcome_summary
from apg.profiles.persona import OutlierProfile, PersonaProfile
from apg.report.avatars import avatar_svg, persona_colour
from apg.report.markdown import WEAK_TITLE
from apg.search.candidates import Candidate
from apg.search.leaderboard import MAP_SAMPLE, sample_rows
from apg.search.selection import rank_key
from apg.version import __version__

if TYPE_CHECKING:
    from apg.pipeline import RunResult

SILHOUETTE_SAMPLE = 3000
TREE_SAMPLE = 2000
KEY_NUMBERS = 5
DEMOGRAPHIC_BARS = 4


@dataclass
class CandidateRow:
    """One leaderboard row: a candidate without its labels."""

    algorithm: str
    params: dict[str, Any]
    n_clusters: int
    silhouette: float
    davies_bouldin: float
    calinski_harabasz: float
    noise_share: float
    min_cluster_share: float
    eligible: bool
    reason: str
    selected: bool
    rank: int = 0  # 1 = best silhouette (ties as in apg.search.leaderboard.rank_key)
    stability: float | None = None  # None: not refitted (apg.search.stability)

    @property
    def key(self) -> str:
        inner = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.algorithm}({inner})"

    @classmethod
    def from_candidate(cls, c: Candidate, rank: int = 0) -> CandidateRow:
        return cls(
            c.algorithm,
            dict(c.params),
            c.n_clusters,
            c.silhouette,
            c.davies_bouldin,
            c.calinski_harabasz,
            c.noise_share,
            c.min_cluster_share,
            c.eligible,
            c.reason,
            c.selected,
            rank,
            c.stability,
        )


@dataclass
class ReportData:
    """Everything the page shows, as plain values (storable, and rebuildable from storage)."""

    run_id: str
    created_at: str
    personas: list[PersonaProfile]
    outliers: OutlierProfile
    candidates: list[CandidateRow]
    wcss: dict[int, float] = field(default_factory=dict)
    elbow_k: int | None = None
    n_users: int = 0  # rows clustered
    rows_read: int = 0
    features: dict[str, list[str]] = field(default_factory=dict)  # role -> columns
    # persona id -> fact id -> fact text (the sheet the narrative cites)
    facts: dict[str, dict[str, str]] = field(default_factory=dict)
    # A seeded sample (<= MAP_SAMPLE rows) of the clustered matrix and its labels (-1 noise).
    sample_X: np.ndarray | None = field(default=None, repr=False)
    sample_labels: np.ndarray | None = field(default=None, repr=False)
    tree_linkage: str = "ward"  # linkage of the dendrogram: the winner's, else ward
    seed: int = 0
    min_cell: int = 5  # demographic categories smaller than this are merged into "other"
    significance: float = 0.05  # narration.significance: the level of "over-represented"
    version: str = __version__
    weak: list[str] = field(default_factory=list)  # why the structure is weak; empty: it is not

    @property
    def winner(self) -> CandidateRow | None:
        return next((c for c in self.candidates if c.selected), None)


def report_data_from_result(result: RunResult) -> ReportData:
    """Everything the page needs from a finished run, with a seeded sample of its matrix."""
    search, frame, config = result.search, result.frame, result.config
    ranked = sorted(range(len(search.candidates)), key=lambda i: rank_key(search.candidates[i], i))
    position = {i: pos for pos, i in enumerate(ranked, start=1)}
    rows = [CandidateRow.from_candidate(c, position[i]) for i, c in enumerate(search.candidates)]
    n_users = len(result.labels)
    roles: dict[str, str] = {c: frame.role_of(c) for c in frame.features}
    min_cell = config.narration.min_cell
    outliers = result.outliers if result.outliers.size else None
    facts = {
        p.persona_id: build_fact_sheet(
            p,
            n_users=n_users,
            outliers=outliers,
            feature_roles=roles,
            min_cell=min_cell,
            significance=config.narration.significance,
        ).as_dict()
        for p in result.personas
    }
    idx = sample_rows(n_users, MAP_SAMPLE, config.search.seed)
    winner = search.winner
    linkage = (
        str(winner.params.get("linkage", "ward")) if winner.algorithm == "agglomerative" else "ward"
    )
    return ReportData(
        run_id=result.run_id,
        created_at=result.created_at,
        personas=result.personas,
        outliers=result.outliers,
        candidates=rows,
        wcss=dict(search.wcss),
        elbow_k=search.elbow_k,
        n_users=n_users,
        rows_read=len(result.table.frame),
        features={
            "behavioral": list(frame.behavioral),
            "attitudinal": list(frame.attitudinal),
            "demographic": list(frame.demographic),
        },
        facts=facts,
        sample_X=np.asarray(result.matrix_rows(idx)),
        sample_labels=np.asarray(result.labels[idx]),
        tree_linkage=linkage,
        seed=config.search.seed,
        weak=list(search.weak),
        min_cell=min_cell,
        significance=config.narration.significance,
    )


# --- view models -------------------------------------------------------------------------


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


def _key_numbers(p: PersonaProfile) -> list[dict[str, Any]]:
    out = []
    for c in p.contrasts[:KEY_NUMBERS]:
        sd = c.std_diff
        out.append(
            {
                "label": capitalise(humanise(c.feature)),
                "feature": c.feature,
                "role": c.role,
                "persona": fmt(c.cluster_mean),
                "everyone": fmt(c.population_mean),
                "sd": f"{sd:+.2f}",
                "direction": c.direction,
                "width": f"{min(abs(sd), 2.0) / 2.0 * 50:.1f}",  # % of the bar; half the bar = 2 SD
            }
        )
    return out


def _demographics(p: PersonaProfile, min_cell: int) -> list[dict[str, Any]]:
    out = []
    for col, demo in p.demographics.items():
        entry: dict[str, Any] = {
            "label": capitalise(humanise(col)),
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
            entry["median"] = fmt(cl.median)
            entry["range"] = (
                f"{fmt(cl.q1)}–{fmt(cl.q3)}" if cl.q1 is not None and cl.q3 is not None else ""
            )
            entry["everyone"] = fmt(pop.median) if pop and pop.median is not None else "–"
        else:
            cats = merge_small(demo.categories, min_cell)[:DEMOGRAPHIC_BARS]
            if not cats:
                continue
            entry["bars"] = [
                {
                    "value": c.value,
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
        "key_numbers": _key_numbers(p),
        "demographics": _demographics(p, data.min_cell),
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
            {"label": capitalise(humanise(c.feature)), "sd": f"{c.std_diff:+.2f}"}
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
