"""report.md: a readable summary of one run for people who will not open the JSON."""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING

from apg.narration.display import Labels
from apg.narration.fact_contrasts import key_contrasts
from apg.narration.facts import build_fact_sheet
from apg.narration.freshness import Stale, stale_numbers
from apg.profiles.confidence import confidence_text
from apg.profiles.outcomes import outcome_summary
from apg.profiles.persona import CategoryContrast, PersonaProfile
from apg.search.candidates import Candidate
from apg.search.selection import rank_key

if TYPE_CHECKING:
    from apg.pipeline import RunResult

LEADERBOARD_ROWS = 10


def _f(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:,.{digits}f}"


def _md(text: str) -> str:
    """Text from the data, inert in Markdown: HTML escaped (a ``<script>`` in a value or a
    narrative is shown, never run, wherever the report is rendered) and table-breaking
    characters neutralised."""
    return html.escape(text, quote=False).replace("|", "\\|").replace("\n", " ")


def stale_lines(stale: list[Stale]) -> list[str]:
    """A carried narrative's numbers that this run's facts no longer support, old → new."""
    if not stale:
        return []
    lines = [
        f"> **Stale numbers:** this narrative was written from an earlier run; "
        f"{len(stale)} of its numbers no longer match this run's facts:",
    ]
    lines += [f"> - {_md(s.describe())}" for s in stale]
    return [*lines, ""]


def _card(
    p: PersonaProfile, stale: list[Stale] | None = None, labels: Labels | None = None
) -> list[str]:
    shown = labels or Labels()
    n = p.narrative
    title = n.name if n else p.persona_id
    lines = [f"### {p.persona_id} · {_md(title)}", ""]
    if n and n.tagline:
        lines += [f"*{_md(n.tagline)}*", ""]
    lines += [f"**{p.size:,} users ({p.share:.1%})**", ""]
    if p.confidence is not None:
        lines += [f"_{confidence_text(p.confidence)}_", ""]
    lines += stale_lines(stale or [])
    if n:
        lines += [_md(n.summary), ""]
        if n.goals:
            lines += ["Goals:"] + [f"- {_md(g.text)}" for g in n.goals] + [""]
        if n.frustrations:
            lines += ["Frustrations:"] + [f"- {_md(f.text)}" for f in n.frustrations] + [""]
        if n.source != "offline":
            lines += [f"_Narrative source: {n.source}{f' ({n.reason})' if n.reason else ''}_", ""]
    lines += ["| feature | persona mean | everyone | difference (SD) |", "|---|---:|---:|---:|"]
    # Numeric features and categories ranked together; a category row shows its shares.
    for c in key_contrasts(p, 6):
        # The display name for people, the column it comes from for the analyst.
        title = shown.title(c.feature)
        name = title if title == c.feature else f"{title} ({c.feature})"
        if isinstance(c, CategoryContrast):
            lines.append(
                f"| {_md(name)} = {_md(shown.value_label(c.feature, c.value))} | "
                f"{c.share:.1%} | {c.population_share:.1%} | {c.std_diff:+.2f} |"
            )
            continue
        lines.append(
            f"| {_md(name)} | {_f(c.cluster_mean, 2)} | {_f(c.population_mean, 2)} "
            f"| {c.std_diff:+.2f} |"
        )
    lines.append("")
    outcomes = [t for o in p.outcomes.values() if (t := outcome_summary(o))]
    if outcomes:
        lines += ["Outcomes:"] + [f"- {_md(t)}" for t in outcomes] + [""]
    lines += demographic_lines(p, shown)
    if p.demographics:
        lines.append("")
    return lines


def demographic_lines(p: PersonaProfile, shown: Labels) -> list[str]:
    """``- Birth year: median 1971 (everyone 1969)``, ``- Sales channel: Horeca 97% (×1.43)``:
    display names, value labels and number formats from the config's ``labels:``."""
    lines = []
    for col, demo in p.demographics.items():
        name = _md(shown.title(col))
        if demo.kind == "date" and demo.cluster_dates and demo.cluster_dates.median:
            everyone = demo.population_dates.median if demo.population_dates else None
            median = demo.cluster_dates.median
            lines.append(f"- {name}: median {median} (everyone {everyone or '–'})")
        elif demo.kind == "numeric" and demo.cluster:
            everyone = demo.population.median if demo.population else None
            lines.append(
                f"- {name}: median {_md(shown.format_value(col, demo.cluster.median))} "
                f"(everyone {_md(shown.format_value(col, everyone))})"
            )
        elif demo.categories:
            top = ", ".join(
                f"{_md(shown.value_label(col, c.value))} {c.share:.0%} (×{c.lift:.2f})"
                for c in demo.categories[:3]
            )
            lines.append(f"- {name}: {top}")
    return lines


def render_report(result: RunResult) -> str:
    frame, prep, s = result.frame, result.prepared, result.search
    w = s.winner
    lines = [
        f"# Personas · {result.run_id}",
        "",
        f"{len(result.personas)} personas from {len(result.labels):,} users.",
        "",
        *weak_banner(result.search.weak),
        "## Data",
        "",
        f"- Rows read: {len(result.table.frame):,}; used: {len(result.labels):,}; "
        f"dropped: {prep.rows_dropped:,}",
        f"- Behavioral: {', '.join(frame.behavioral) or '–'}",
        f"- Attitudinal: {', '.join(frame.attitudinal) or '–'}",
        f"- Demographic (describe only, never clustered): {', '.join(frame.demographic) or '–'}",
    ]
    if prep.imputed:
        lines.append("- Imputed values: " + ", ".join(f"{k} {v}" for k, v in prep.imputed.items()))
    for d in prep.dates:
        lines.append(
            f"- {_md(str(d['column']))}: dates, clustered as {d['unit']} {d['reference_date']} "
            f"({d['reference']})"
        )
    if prep.binary:
        lines.append(
            "- Two-valued columns (rarer value, users): "
            + ", ".join(
                f"{_md(str(b['column']))} ({_md(str(b['value']))}, {b['users']:,})"
                for b in prep.binary
            )
        )
    if prep.redundant:
        lines.append(
            "- Dropped as repeats of another column: "
            + ", ".join(
                f"{_md(str(r['column']))} (kept {_md(str(r['kept']))}, r = {float(r['r']):.2f})"  # type: ignore[arg-type]
                for r in prep.redundant
            )
        )
    if prep.transforms:
        lines.append(
            "- Transformed before scaling (profiles stay in raw units): "
            + transforms_text(prep.transforms)
        )
    if frame.dropped_columns:
        lines.append("- Dropped columns: " + ", ".join(frame.dropped_columns))
    lines += [
        "",
        "## Selection",
        "",
        f"Chosen: **{w.key}** with {w.n_clusters} clusters, silhouette {w.silhouette:.3f}"
        + (f", noise {w.noise_share:.1%}" if w.algorithm == "dbscan" else "")
        + ".",
        f"K-Means elbow (WCSS vs k): k = {s.elbow_k if s.elbow_k is not None else '–'}.",
        "",
        "### Leaderboard (top 10 by silhouette)",
        "",
        "| # | candidate | clusters | silhouette | Davies–Bouldin | Calinski–Harabasz | noise "
        "| eligible |",
        "|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    ranked = sorted(range(len(s.candidates)), key=lambda i: rank_key(s.candidates[i], i))
    for pos, i in enumerate(ranked[:LEADERBOARD_ROWS], start=1):
        c = s.candidates[i]
        mark = " ✔" if c.selected else ""
        lines.append(
            f"| {pos} | {c.key}{mark} | {c.n_clusters} | {_f(c.silhouette)} | "
            f"{_f(c.davies_bouldin)} | {_f(c.calinski_harabasz, 1)} | {c.noise_share:.1%} | "
            f"{'yes' if c.eligible else _md('no: ' + c.reason)} |"
        )
    if s.wcss:
        lines += ["", "### Elbow", "", "| k | WCSS | silhouette |", "|---:|---:|---:|"]
        sil = {c.params["k"]: c.silhouette for c in s.candidates if c.algorithm == "kmeans"}
        for k in sorted(s.wcss):
            mark = " ← elbow" if k == s.elbow_k else ""
            lines.append(f"| {k}{mark} | {_f(s.wcss[k], 1)} | {_f(sil.get(k))} |")
    lines += ["", "## Personas", ""]
    shown = Labels.from_config(result.config.labels)
    for p in result.personas:
        lines += _card(p, _stale(p, result), shown)
    if result.outliers.size:
        o = result.outliers
        lines += [
            "## Outliers (fit no persona)",
            "",
            f"{o.size:,} users ({o.share:.1%}) are DBSCAN noise. They differ most in: "
            + ", ".join(f"{c.feature} {c.std_diff:+.2f} SD" for c in o.contrasts[:4])
            + ".",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def _stale(p: PersonaProfile, result: RunResult) -> list[Stale]:
    """The numbers of a carried narrative that this run's facts no longer support."""
    if p.narrative is None:
        return []
    frame = result.frame
    sheet = build_fact_sheet(
        p,
        n_users=len(result.labels),
        outliers=result.outliers if result.outliers.size else None,
        feature_roles={c: frame.role_of(c) for c in frame.features},
        min_cell=result.config.narration.min_cell,
        significance=result.config.narration.significance,
        labels=Labels.from_config(result.config.labels),
    )
    return stale_numbers(p.narrative, sheet)


def transforms_text(transforms: list[dict[str, object]]) -> str:
    """``Fresh log1p (skew 2.56 → -1.57), ...``"""
    return ", ".join(
        f"{t['column']} {t['transform']} (skew {t['skew_before']:.2f} → {t['skew_after']:.2f})"
        for t in transforms
    )


WEAK_TITLE = "Weak structure: read these personas as tentative"


def weak_banner(reasons: list[str]) -> list[str]:
    """The report's warning when the run is weak (empty when it is not)."""
    if not reasons:
        return []
    return [
        f"> **{WEAK_TITLE}.** The users do not split into clear, repeatable groups, so the "
        "personas below may be arbitrary slices rather than real kinds of users. Before acting "
        "on them, check the features (fewer, or others) and the data. Why: "
        + "; ".join(reasons)
        + ".",
        "",
    ]


def render_failure(candidates: list[Candidate], message: str) -> str:
    """report.md of a run with no eligible candidate: why, and the whole leaderboard."""
    ranked = sorted(range(len(candidates)), key=lambda i: rank_key(candidates[i], i))
    lines = [
        "# No personas: no candidate met the selection rules",
        "",
        *(f"    {line}" for line in message.splitlines()),
        "",
        "## Leaderboard (every candidate, by silhouette)",
        "",
        "| candidate | clusters | silhouette | stability | noise | smallest | rejected because |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for i in ranked:
        c = candidates[i]
        lines.append(
            f"| {_md(c.key)} | {c.n_clusters} | {_f(c.silhouette)} | {_f(c.stability)} "
            f"| {c.noise_share:.1%} | {c.min_cluster_share:.1%} | {_md(c.reason) or '–'} |"
        )
    return "\n".join(lines) + "\n"
