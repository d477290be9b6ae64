"""``apg report``: report.html of a stored run, rebuilt from the database."""

from __future__ import annotations

import base64
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
import store_helpers as h
from click.testing import CliRunner
from web_helpers import Demo, demo, demo_template, store

from apg.cli.main import main
from apg.report.outputs import write_outputs
from apg.sources import SourceTable
from apg.store import Store, review
from apg.store import schema as t
from apg.store.reports import decode_array, encode_array, from_document, load_report, to_document
from apg.store.runner import run_with_store

__all__ = ["demo", "demo_template", "store"]  # fixtures
CHARTS = 5  # elbow, candidates, silhouette, map, tree


class Page(HTMLParser):
    """Checks nesting and collects images and text."""

    VOID = frozenset({"meta", "img", "br", "hr", "input", "link"})

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.images: list[dict[str, str | None]] = []
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append(dict(attrs))
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        if data.strip() and "script" not in self.stack and "style" not in self.stack:
            self.text.append(data.strip())


def _report(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["report", *args])
    return result.exit_code, result.stdout, result.stderr


def _svg_images(page: Page) -> list[bytes]:
    prefix = "data:image/svg+xml;base64,"
    found = [str(i["src"]) for i in page.images if str(i.get("src")).startswith(prefix)]
    return [base64.b64decode(src[len(prefix) :]) for src in found]


def test_cli_report_page_parses_and_has_every_persona_and_chart(
    demo: Demo, store: Store, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    code, stdout, stderr = _report(demo.second_run, "--out", str(out), "--db", demo.url)
    assert code == 0, stderr
    assert stdout == f"wrote the report of {demo.second_run} (3 personas) to {out}\n"
    assert stderr == ""
    page = Page(out.read_text(encoding="utf-8"))
    assert page.errors == [] and page.stack == []
    text = " ".join(page.text)
    for persona in store.personas(demo.second_run):
        assert persona["persona_id"] in text and persona["name"] in text
    images = _svg_images(page)
    assert len(images) == CHARTS
    assert all(i.lstrip().startswith(b"<?xml") and b"<svg" in i for i in images)


def test_cli_report_defaults_to_the_latest_run(demo: Demo, tmp_path: Path) -> None:
    code, stdout, _ = _report("--db", demo.url)
    assert code == 0
    assert stdout.startswith(f"wrote the report of {demo.second_run} ")
    assert (tmp_path / "report.html").exists()  # tests run in tmp_path


def test_cli_report_equals_the_page_the_run_wrote(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'apg.db'}"
    with Store(url) as s:
        stored = h.run(s, h.blobs())
    write_outputs(stored.result, tmp_path / "out")
    code, _, _ = _report("--db", url, "--out", str(tmp_path / "again.html"))
    assert code == 0
    written = (tmp_path / "out" / "report.html").read_bytes()
    assert (tmp_path / "again.html").read_bytes() == written


def test_cli_report_shows_current_narratives_unless_as_recorded(
    demo: Demo, store: Store, tmp_path: Path
) -> None:
    review.edit(store, demo.steady, {"name": "Renamed In Review"}, by="bob")
    review.approve(store, demo.steady, by="ana")
    _report(demo.second_run, "--out", str(tmp_path / "now.html"), "--db", demo.url)
    _report(
        demo.second_run, "--out", str(tmp_path / "then.html"), "--as-recorded", "--db", demo.url
    )
    assert "Renamed In Review" in (tmp_path / "now.html").read_text(encoding="utf-8")
    assert "Renamed In Review" not in (tmp_path / "then.html").read_text(encoding="utf-8")


def test_cli_report_of_run_recorded_before_report_data_says_charts_are_missing(
    demo: Demo, store: Store, tmp_path: Path
) -> None:
    with store.write() as conn:
        conn.execute(sa.delete(t.reports).where(t.reports.c.run_id == demo.second_run))
    out = tmp_path / "old.html"
    code, _, stderr = _report(demo.second_run, "--out", str(out), "--db", demo.url)
    assert code == 0
    assert stderr == (
        f"note: run {demo.second_run} was recorded before apg stored report data (schema "
        "version 5): the silhouette plot, the map of users and the hierarchical tree are "
        "unavailable\n"
    )
    page = Page(out.read_text(encoding="utf-8"))
    assert page.errors == []
    text = " ".join(page.text)
    assert "Not available: no sample of the clustered matrix was kept for this run." in text
    assert len(_svg_images(page)) == 2  # the elbow and candidates charts still work
    for persona in store.personas(demo.second_run):
        assert persona["persona_id"] in text and persona["name"] in text


def test_cli_report_rebuilt_leaderboard_matches_the_stored_one(demo: Demo, store: Store) -> None:
    with store.read() as conn:
        stored = load_report(conn, demo.second_run).data
    with store.write() as conn:
        conn.execute(sa.delete(t.reports).where(t.reports.c.run_id == demo.second_run))
    with store.read() as conn:
        rebuilt = load_report(conn, demo.second_run)
    assert not rebuilt.complete
    assert [(c.key, c.rank, c.eligible) for c in rebuilt.data.candidates] == [
        (c.key, c.rank, c.eligible) for c in stored.candidates
    ]
    assert rebuilt.data.wcss == pytest.approx(stored.wcss)
    assert rebuilt.data.elbow_k == stored.elbow_k
    assert rebuilt.data.facts == stored.facts
    assert [p.persona_id for p in rebuilt.data.personas] == [p.persona_id for p in stored.personas]


def test_cli_report_of_failed_run_is_an_error(demo: Demo) -> None:
    code, _, stderr = _report(demo.failed_run, "--db", demo.url)
    assert code == 1
    assert stderr.startswith(f"error: run {demo.failed_run} has no personas to report: it failed")


def test_cli_report_unknown_run_suggests_close_ids(demo: Demo) -> None:
    code, _, stderr = _report(demo.second_run + "x", "--db", demo.url)
    assert code == 1
    assert stderr.startswith(f"error: no run '{demo.second_run}x'; did you mean")


def test_cli_report_never_creates_a_database(tmp_path: Path) -> None:
    code, _, stderr = _report("--db", str(tmp_path / "typo.db"))
    assert code == 1
    assert "no database at" in stderr
    assert not (tmp_path / "typo.db").exists()


def test_store_report_document_round_trips(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'apg.db'}"
    with Store(url) as s:
        stored = run_with_store(h.config(), s, table=SourceTable(frame=h.blobs()))
        with s.read() as conn:
            loaded = load_report(conn, stored.run_id, as_recorded=True).data
    doc = to_document(loaded)
    again = from_document(doc)
    assert again.sample_X is not None and loaded.sample_X is not None
    np.testing.assert_array_equal(again.sample_X, loaded.sample_X)
    np.testing.assert_array_equal(again.sample_labels, loaded.sample_labels)  # type: ignore[arg-type]
    assert to_document(again) == doc


def test_store_report_arrays_refuse_pickles() -> None:
    import io

    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle=False"):
        decode_array(base64.b64encode(buf.getvalue()).decode())
    assert decode_array(encode_array(np.arange(3))).tolist() == [0, 1, 2]  # type: ignore[union-attr]
