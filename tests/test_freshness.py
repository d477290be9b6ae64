"""Current numbers: a carried narrative's numbers checked against the new run's facts, refreshed
in a new draft when apg wrote it and nobody reviewed it, otherwise marked stale old -> new."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
import store_helpers as h
from click.testing import CliRunner
from fake_openai import persona
from starlette.testclient import TestClient

from apg.cli.main import main
from apg.narration.facts import build_fact_sheet
from apg.narration.freshness import fact_map, refresh, stale_numbers
from apg.profiles.narrative import Item, Narrative
from apg.report.html import render_html
from apg.store import Store, review
from apg.store import schema as t
from apg.store.record import next_version
from apg.store.reports import load_report
from apg.web import create_app

# avg_order_value 150 vs 60 (+150%, 2.5x, 1.5 SD); purchases_per_year 24 vs 6.5 (1.2 SD).
OLD = build_fact_sheet(persona(size=400), n_users=1000)


def narrative(summary: str, **extra: object) -> Narrative:
    return Narrative(
        name="Big basket buyers",
        summary=summary,
        goals=[Item(text="Orders worth 150 on average.", facts=["F2"])],
        frustrations=[Item(text="Waiting for delivery.", facts=["F1"])],
        facts=OLD.as_dict(),
        **extra,  # type: ignore[arg-type]
    )


def pairs(stale: list) -> list[tuple[str, str, str | None, str | None]]:
    return [(s.field, s.text_number, s.old_value, s.new_value) for s in stale]


def test_freshness_sizes_that_changed_are_stale_old_to_new_and_the_rest_holds() -> None:
    new = build_fact_sheet(persona(size=450), n_users=1000)  # 450 users: 45% of 1,000
    n = narrative("400 users (40% of the 1,000 clustered) spend 150 per order, 2.5× everyone's.")
    got = stale_numbers(n, new)
    assert pairs(got) == [("summary", "400", "400", "450"), ("summary", "40%", "40%", "45%")]
    assert [(s.fact_id, s.old_fact_id) for s in got] == [("F1", "F1"), ("F1", "F1")]
    assert [s.describe() for s in got] == ["400 → 450 (summary)", "40% → 45% (summary)"]


def test_freshness_drafted_from_the_same_facts_is_never_stale() -> None:
    n = narrative("400 users (40% of the 1,000 clustered) spend 150 per order.")
    assert stale_numbers(n, OLD) == []


def test_freshness_follows_a_fact_whose_id_moved() -> None:
    # purchases_per_year now differs most, so avg_order_value moves from F2 to F3; its
    # persona mean is 160 now (everyone still 60: +167%, 2.67x).
    contrasts = [
        ("avg_order_value", "behavioral", 160.0, 60.0, 1.5),
        ("purchases_per_year", "behavioral", 24.0, 6.5, 2.0),
        ("nps", "attitudinal", 3.5, 6.4, -0.9),
    ]
    new = build_fact_sheet(persona(size=400, contrasts=contrasts), n_users=1000)
    assert new.get("F3").feature == "avg_order_value"  # type: ignore[union-attr]
    n = narrative("They spend 150 per order; everyone spends 60.")
    got = stale_numbers(n, new)
    assert pairs(got) == [("summary", "150", "150", "160"), ("goals[1]", "150", "150", "160")]
    assert {(s.old_fact_id, s.fact_id) for s in got} == {("F2", "F3")}
    assert fact_map(n, new)["F2"] == "F3" and fact_map(n, new)["F3"] == "F2"


def test_freshness_a_number_on_no_fact_is_stale_without_values() -> None:
    new = build_fact_sheet(persona(size=450), n_users=1000)
    got = stale_numbers(narrative("About 12 visits a week."), new)
    assert pairs(got) == [("summary", "12", None, None)]
    assert got[0].describe() == "12 → no longer on the fact sheet (summary)"


def test_freshness_refresh_rewrites_numbers_cites_new_ids_and_keeps_the_rest() -> None:
    contrasts = [
        ("avg_order_value", "behavioral", 160.0, 60.0, 1.5),
        ("purchases_per_year", "behavioral", 24.0, 6.5, 2.0),
        ("nps", "attitudinal", 3.5, 6.4, -0.9),
    ]
    new = build_fact_sheet(persona(size=450, contrasts=contrasts), n_users=1000)
    n = narrative("400 users (40.0% of everyone) spend 150 per order.")
    stale = stale_numbers(n, new)
    fresh = refresh(n, new, stale)
    assert fresh is not None
    # As precise as the narrative, never more than the sheet ("45%": the sheet's 45.0).
    assert fresh.summary == "450 users (45% of everyone) spend 160 per order."
    assert fresh.goals[0].text == "Orders worth 160 on average." and fresh.goals[0].facts == ["F3"]
    assert fresh.frustrations[0].facts == ["F1"] and fresh.name == n.name
    assert fresh.facts == new.as_dict() and stale_numbers(fresh, new) == []
    assert fresh.validation is not None and "400 → 450 (summary)" in str(
        fresh.validation["numbers_refreshed"]
    )
    # A number with no new value cannot be refreshed: the whole text is marked stale instead.
    odd = narrative("400 users, about 12 visits a week.")
    assert refresh(odd, new, stale_numbers(odd, new)) is None


# -- across runs, through the store -------------------------------------------------------
# Goals and frustrations without numbers: the offline ones state evidence (the features'
# means), whose numbers move between runs too; these tests follow the summary's.
PLAIN = {
    "goals": [{"text": f"Goal {w}.", "facts": ["F1"]} for w in ("one", "two")],
    "frustrations": [{"text": f"Frustration {w}.", "facts": ["F1"]} for w in ("one", "two")],
}


def _generated_draft(store: Store, pid: str, summary: str) -> None:
    """A draft apg generated (as an LLM reply would be) with ``summary``, on the latest body."""
    body = dict(review.history(store, pid)[-1]["body"])
    body.update(summary=summary, tagline="Steady buyers", **PLAIN)
    with store.write() as conn:
        conn.execute(
            t.narratives.insert().values(
                persona_id=pid,
                version=next_version(conn, pid),
                run_id=None,
                origin="generated",
                body=body,
                status="draft",
                created_by="apg/llm:test",
                created_at="2024-01-01T00:00:00Z",
            )
        )


def test_freshness_across_runs_refreshes_drafts_and_marks_reviewed_text(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/apg.db"
    with Store(url) as store:
        week1 = h.run(store, h.blobs())  # 4 segments of 150 users: 25% of 600 each
        by_seg = {seg: pid for pid, seg in h.segment_of(week1).items()}
        a, b = by_seg["A"], by_seg["B"]
        text = "150 users: 25% of the 600 clustered."
        review.edit(store, a, {"summary": text, "tagline": "Steady buyers", **PLAIN}, by="ana")
        review.approve(store, a, by="ana")
        _generated_draft(store, b, text)
        b_version = len(review.history(store, b))
        # A fifth segment: the others keep 150 users, now 20% of 750.
        week2 = h.run(
            store,
            h.blobs({**{k: 150 for k in h.CENTRES}, "E": 150}, centres={**h.CENTRES, "E": h.FAR}),
        )
        assert h.status_of(week2)[a] == h.status_of(week2)[b] == "continuing"
        # B: an unreviewed generated draft -> a new draft with the current numbers.
        versions = review.history(store, b)
        assert len(versions) == b_version + 1
        latest = versions[-1]
        assert latest["status"] == "draft" and latest["run_id"] == week2.run_id
        assert latest["body"]["summary"] == "150 users: 20% of the 750 clustered."
        assert latest["note"] == "numbers refreshed from this run's facts: 25% → 20%; 600 → 750"
        assert week2.plan.refreshed[b].summary == latest["body"]["summary"]
        assert b not in week2.plan.drafts  # nothing was narrated: the run is not degraded
        # A: approved text never changes; its stale numbers are recorded for this run.
        assert len(review.history(store, a)) == 2
        detail = store.persona(a)
        assert detail["narrative"]["body"]["summary"] == text
        assert [(s["text_number"], s["new_value"]) for s in detail["stale"]] == [
            ("25%", "20%"),
            ("600", "750"),
        ]
        with store.read() as conn:
            stored = conn.execute(
                sa.select(t.persona_runs.c.freshness).where(
                    t.persona_runs.c.run_id == week2.run_id, t.persona_runs.c.persona_id == b
                )
            ).scalar()
        assert stored["version"] == b_version + 1 and stored["stale"] == []
        assert [(s["text_number"], s["new_value"]) for s in stored["refreshed"]] == [
            ("25%", "20%"),
            ("600", "750"),
        ]
        listed = {p["persona_id"]: p for p in store.personas(week2.run_id)}
        assert len(listed[a]["stale"]) == 2 and listed[b]["stale"] == []
        with store.read() as conn:
            report = render_html(load_report(conn, week2.run_id).data)
        client = TestClient(create_app(store), base_url="http://127.0.0.1")
        page = client.get(f"/personas/{a}").text
        run_page = client.get(f"/runs/{week2.run_id}").text
        listing = client.get(f"/personas?run={week2.run_id}").text
    # The report and the review pages mark A's numbers, old -> new.
    for html in (report, run_page):
        assert "Stale numbers." in html and "summary: 25% → 20%" in html
        assert '<mark class="stale" title="stale: now 750">600</mark>' in html
    assert "Stale numbers." in page and "→ 750" in page
    assert "2 stale numbers" in listing
    out = CliRunner().invoke(main, ["personas", "show", a, "--db", url], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert "Stale numbers" in out.output and "- summary: 600 → 750" in out.output
    out = CliRunner().invoke(main, ["personas", "show", b, "--db", url], catch_exceptions=False)
    assert "Numbers refreshed by apg" in out.output and "600 → 750" in out.output
