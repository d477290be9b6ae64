"""A run's persona cards as an HTML fragment for notebooks (``Run._repr_html_``).

The cards are the ones ``report.html`` shows, cut out of the rendered page with the page's own
stylesheet, so the notebook and the report never drift apart. The stylesheet is nested under
one wrapper class (CSS nesting) so it styles the cards and nothing else of the notebook.
"""

from __future__ import annotations

import html
import re
from dataclasses import replace
from typing import TYPE_CHECKING

from apg.report.data import report_data_from_result
from apg.report.html import render_html

if TYPE_CHECKING:
    from apg.pipeline import RunResult

WRAPPER = "apg-run"
# Rules on the page itself become rules on the wrapper.
_PAGE_RULE = re.compile(r"(?m)^(?::root|html|body)\s*\{")


def cards_page(result: RunResult) -> str:
    """report.html without the charts that need the clustered matrix (the slow ones): the
    cards are the same."""
    data = replace(report_data_from_result(result), sample_X=None, sample_labels=None)
    return render_html(data)


def cards_fragment(page: str, result: RunResult) -> str:
    """The weak-structure notice and the personas section of ``page`` (a rendered report),
    styled by its stylesheet; a plain table of the personas if the page has no such parts."""
    style = _between(page, "<style>", "</style>")
    section = _between(page, '<section id="personas">', "</section>", keep=True)
    if style is None or section is None:
        return _plain_table(result)
    weak = _between(page, '<aside class="weak"', "</aside>", keep=True) or ""
    css = _PAGE_RULE.sub("& {", style.strip())
    w = result.search.winner
    lede = (
        f'<p class="lede">{html.escape(result.run_id)}: {len(result.personas)} personas from '
        f"{len(result.labels):,} users, {html.escape(w.key)}, silhouette {w.silhouette:.3f}</p>"
    )
    return (
        f'<div class="{WRAPPER}">\n<style>\n.{WRAPPER} {{\n{css}\n}}\n'
        f".{WRAPPER} {{ padding: .5rem; }}\n</style>\n{lede}\n{weak}{section}\n</div>"
    )


def _between(text: str, start: str, end: str, keep: bool = False) -> str | None:
    i = text.find(start)
    if i < 0:
        return None
    j = text.find(end, i + len(start))
    if j < 0:
        return None
    return text[i : j + len(end)] if keep else text[i + len(start) : j]


def _plain_table(result: RunResult) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(p.persona_id)}</td>"
        f"<td>{html.escape(p.narrative.name if p.narrative else '')}</td>"
        f"<td>{p.size:,}</td><td>{p.share:.1%}</td></tr>"
        for p in result.personas
    )
    return (
        f'<table class="{WRAPPER}"><thead><tr><th>persona</th><th>name</th><th>users</th>'
        f"<th>share</th></tr></thead><tbody>{rows}</tbody></table>"
    )
