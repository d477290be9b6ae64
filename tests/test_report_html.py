"""report.html: structure, embedded charts, no network, escaping, determinism, sorting."""

from __future__ import annotations

import base64
import copy
import shutil
import subprocess
import tempfile
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from apg.config import parse_config
from apg.pipeline import RunResult, run
from apg.profiles.narrative import Item, Narrative
from apg.profiles.persona import OutlierProfile
from apg.report import charts
from apg.report.avatars import avatar_svg, persona_colour
from apg.report.charts import text
from apg.report.data import ReportData, report_data_from_result
from apg.report.html import render_html, sample_rows
from apg.sources import SourceTable
from apg.sources.sample import generate_users

VOID = {"meta", "img", "br", "hr", "input", "link", "source", "wbr", "col", "area", "base"}
SVG_SHAPES = {"circle", "ellipse", "path", "rect"}
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Page(HTMLParser):
    """Walks the document: checks nesting and collects elements, attributes and text.

    Each element is recorded with its ancestors as ``tag`` or ``tag.class`` strings.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.path: list[str] = []
        self.errors: list[str] = []
        self.elements: list[tuple[str, dict[str, str | None], tuple[str, ...]]] = []
        self.text: list[tuple[tuple[str, ...], str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.elements.append((tag, found, tuple(self.path)))
        if tag not in VOID:
            self.stack.append(tag)
            self.path.append(".".join([tag, *(found.get("class") or "").split()]))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs), tuple(self.path)))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()
        self.path.pop()

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.text.append((tuple(self.stack), data))

    def find(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [
            a
            for t, a, _ in self.elements
            if t == tag and all(a.get(k) == v for k, v in attrs.items())
        ]

    def all_text(self) -> str:
        return " ".join(
            t for stack, t in self.text if "script" not in stack and "style" not in stack
        )

    def board_rows(self) -> list[tuple[dict[str, str | None], list[dict[str, str | None]]]]:
        """The leaderboard's body rows: (tr attributes, [td attributes])."""
        rows: list[tuple[dict[str, str | None], list[dict[str, str | None]]]] = []
        for tag, attrs, path in self.elements:
            if "table.board" in path and "tbody" in path:
                if tag == "tr":
                    rows.append((attrs, []))
                elif tag == "td":
                    rows[-1][1].append(attrs)
        return rows


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    assert page.errors == []
    assert page.stack == []
    return page


@pytest.fixture(scope="module")
def result() -> RunResult:
    config = parse_config(
        {
            "sources": [{"kind": "file", "path": "unused.csv"}],
            "id_column": "user_id",
            "features": {
                "behavioral": [
                    "logins_per_month",
                    "sessions_per_week",
                    "purchases_per_year",
                    "avg_order_value",
                    "support_tickets",
                    "days_since_last_login",
                ],
                "attitudinal": ["nps", "satisfaction"],
                "demographic": ["age", "gender", "country"],
            },
            "search": {
                "kmeans": {"k": [2, 6]},
                "agglomerative": {"k": [2, 6], "linkage": ["ward"]},
                "dbscan": {"eps": "auto", "min_samples": [5]},
                "seed": 0,
            },
            "narration": {"client": "offline"},
        }
    )
    return run(config, table=SourceTable(frame=generate_users(700, seed=3)))


@pytest.fixture(scope="module")
def data(result: RunResult) -> ReportData:
    return report_data_from_result(result)


@pytest.fixture(scope="module")
def html(data: ReportData) -> str:
    return render_html(data)


def test_render_html_parses_into_sections_with_every_persona(html: str, data: ReportData) -> None:
    page = parse(html)
    assert [a["id"] for a in page.find("section")] == ["personas", "selection", "chosen", "data"]
    cards = [a for a in page.find("article") if "card" in (a.get("class") or "").split()]
    assert len(cards) == len(data.personas) >= 2
    text = page.all_text()
    for p in data.personas:
        assert p.narrative is not None
        assert p.narrative.name in text
        assert p.narrative.goals[0].text in text
        assert p.narrative.frustrations[0].text in text
        assert f"{p.size:,}" in text
    assert len(page.find("svg", **{"class": "avatar"})) == len(data.personas)


def test_render_html_shows_the_facts_each_item_cites(html: str, data: ReportData) -> None:
    text = parse(html).all_text()
    p = data.personas[0]
    assert p.narrative is not None
    fact_id = p.narrative.goals[0].facts[0]
    assert " ".join(data.facts[p.persona_id][fact_id].split()) in " ".join(text.split())


def test_render_html_embeds_every_chart_as_a_matplotlib_svg(html: str) -> None:
    images = parse(html).find("img")
    assert len(images) == 5  # elbow, candidates, silhouette, map, tree
    for img in images:
        src = img["src"] or ""
        assert src.startswith("data:image/svg+xml;base64,")
        svg = base64.b64decode(src.split(",", 1)[1]).decode("utf-8")
        assert "<svg" in svg and "<script" not in svg
        assert img["alt"]


def test_render_html_requests_nothing_from_the_network(html: str) -> None:
    page = parse(html)
    for tag, attrs, _ in page.elements:
        for name in ("src", "href"):
            value = attrs.get(name)
            if value is not None:
                assert value.startswith(("#", "data:")), (tag, name, value[:60])
    assert page.find("link") == []
    assert all("src" not in a for a in page.find("script"))
    assert "http://" not in html and "https://" not in html
    csp = page.find("meta", **{"http-equiv": "Content-Security-Policy"})
    assert csp and "default-src 'none'" in (csp[0]["content"] or "")


def test_render_html_escapes_text_from_data_and_models(data: ReportData) -> None:
    hostile = copy.deepcopy(data)
    evil = "<script>alert(1)</script>"
    p = hostile.personas[0]
    p.narrative = Narrative(
        name=evil,
        tagline='"><img src=x onerror=alert(2)>',
        summary="</style><marquee>bold</marquee>",
        goals=[Item(text="Spend $5 & save $$", facts=["F1"])],
        frustrations=[Item(text="<iframe src=//evil.example>", facts=["F99"])],
        quote="</blockquote><script>alert(3)</script>",
    )
    hostile.facts[p.persona_id]["F1"] = "<svg onload=alert(4)>"
    out = render_html(hostile)
    page = parse(out)
    assert len(page.find("script")) == 1  # only the page's own sort script
    assert page.find("iframe") == [] and page.find("marquee") == []
    assert [a for a in page.find("img") if a.get("src") == "x"] == []
    assert all("onload" not in a and "onerror" not in a for _, a, _ in page.elements)
    text = page.all_text()
    for value in (
        evil,
        '"><img src=x onerror=alert(2)>',
        "</style><marquee>bold</marquee>",
        "<svg onload=alert(4)>",
        "(not in the fact sheet)",
    ):
        assert value in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out


def test_render_html_is_deterministic(result: RunResult, html: str) -> None:
    again = render_html(report_data_from_result(result))
    assert again == html


def test_render_html_leaderboard_lists_every_candidate_with_reasons(
    html: str, data: ReportData
) -> None:
    page = parse(html)
    rows = page.board_rows()
    assert len(rows) == len(data.candidates)
    assert [a.get("class") for a, _ in rows].count("winner") == 1
    assert [cells[0]["data-sort"] for _, cells in rows] == [str(i) for i in range(1, len(rows) + 1)]
    winner = data.winner
    assert winner is not None and winner.key in page.all_text()
    text = page.all_text()
    for c in data.candidates:
        if not c.eligible:
            assert c.reason in text
    assert "data-sortable" in page.find("table", **{"class": "board"})[0]


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_render_html_leaderboard_sorts_in_a_browser(html: str, tmp_path: Path) -> None:
    click = (
        "<script>document.querySelectorAll('table.board th button')[3].click();"
        "document.querySelectorAll('table.board th button')[3].click();</script></body>"
    )
    page_file = tmp_path / "report.html"
    page_file.write_text(html.replace("</body>", click), encoding="utf-8")
    profile = tempfile.mkdtemp(dir=tmp_path)
    assert CHROMIUM is not None
    dom = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--dump-dom",
            page_file.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    page = parse(dom)
    # Columns: #, candidate, clusters, silhouette, ...
    values = [float(v) for _, cells in page.board_rows() if (v := cells[3]["data-sort"])]
    assert len(values) > 3
    assert values == sorted(values, reverse=True)  # clicked twice: descending
    assert page.find("th", **{"aria-sort": "descending"})


def test_report_data_from_result_keeps_a_seeded_sample(
    result: RunResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("apg.report.data.MAP_SAMPLE", 250)
    first = report_data_from_result(result)
    second = report_data_from_result(result)
    assert first.sample_X is not None and first.sample_labels is not None
    assert first.sample_X.shape == (250, result.prepared.X.shape[1])
    assert second.sample_X is not None
    assert np.array_equal(first.sample_X, second.sample_X)
    assert first.n_users == len(result.labels)
    idx = sample_rows(len(result.labels), 250, result.config.search.seed)
    assert np.array_equal(first.sample_labels, result.labels[idx])


def test_render_html_notes_sampling_and_outliers(data: ReportData) -> None:
    noisy = copy.deepcopy(data)
    assert noisy.sample_labels is not None
    noisy.sample_labels[::9] = -1
    noisy.outliers = OutlierProfile(size=80, share=80 / noisy.n_users)
    noisy.n_users = 50_000  # the sample now stands for a larger run
    page = parse(render_html(noisy))
    assert page.find("article", id="outliers")
    assert "fit no persona" in page.all_text()


def test_render_html_without_a_sample_keeps_the_page(data: ReportData) -> None:
    bare = replace(data, sample_X=None, sample_labels=None, wcss={}, elbow_k=None)
    page = parse(render_html(bare))
    assert len(page.find("img")) == 1  # only the candidates chart
    text = page.all_text()
    assert "No K-Means candidates" in text
    assert "no sample of the clustered matrix was kept" in text


@pytest.mark.parametrize("case", ["constant", "one_column", "one_cluster", "all_noise", "two_rows"])
def test_charts_survive_degenerate_samples(data: ReportData, case: str) -> None:
    assert data.sample_X is not None and data.sample_labels is not None
    X, labels = data.sample_X[:300].copy(), data.sample_labels[:300].copy()
    if case == "constant":
        X[:] = 0.0
    elif case == "one_column":
        X = X[:, :1]
    elif case == "one_cluster":
        labels[:] = data.personas[0].cluster
    elif case == "all_noise":
        labels[:] = -1
    else:
        X, labels = X[:2], labels[:2]
    series = [
        charts.Series(p.cluster, p.persona_id, p.persona_id, persona_colour(i))
        for i, p in enumerate(data.personas)
    ]
    drawn = [
        charts.silhouette_plot(X[labels >= 0], labels[labels >= 0], series),
        charts.projection_map(X, labels, series),
        charts.dendrogram_chart(X, labels, series, "ward"),
    ]
    assert all(uri is None or uri.startswith("data:image/svg+xml;base64,") for uri in drawn)
    expected_none = {
        "constant": [2],
        "one_cluster": [0],
        "all_noise": [0],
        "two_rows": [0, 1, 2],
    }
    assert [i for i, uri in enumerate(drawn) if uri is None] == expected_none.get(case, [])


def test_avatar_svg_is_deterministic_per_persona_and_escapes_the_name() -> None:
    one = avatar_svg("P1", "Busy <b>buyer</b>", persona_colour(0))
    assert one == avatar_svg("P1", "Busy <b>buyer</b>", persona_colour(0))
    assert one != avatar_svg("P2", "Busy <b>buyer</b>", persona_colour(1))
    assert "<b>" not in one and "Busy &lt;b&gt;buyer&lt;/b&gt;" in one
    page = parse(one)
    assert page.find("svg", **{"class": "avatar"})


def test_charts_text_keeps_dollars_out_of_mathtext() -> None:
    assert text("Saves $5 and $6") == r"Saves \$5 and \$6"
    assert text("x" * 50, 10) == "x" * 9 + "…"
