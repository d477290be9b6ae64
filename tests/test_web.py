"""Review pages through starlette's TestClient: the real app on a real SQLite database."""

from __future__ import annotations

import sqlalchemy as sa
from markupsafe import escape
from starlette.testclient import TestClient
from web_helpers import Demo, client, csrf_of, demo, demo_template, store

from apg.store import Store, locks, now, review, runstate
from apg.store import schema as t

__all__ = ["client", "demo", "demo_template", "store"]  # fixtures


def _post(client: TestClient, path: str, page: str, **fields: str) -> object:
    html = client.get(page).text
    return client.post(path, data={"csrf": csrf_of(html), **fields})


def test_web_home_redirects_to_runs(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 303
    assert response.headers["location"] == "/runs"


def test_web_runs_page_lists_every_run_with_status(client: TestClient, demo: Demo) -> None:
    html = client.get("/runs").text
    for run in (demo.first_run, demo.second_run, demo.failed_run):
        assert f'href="/runs/{run}"' in html
    assert '<span class="badge failed">failed</span>' in html
    assert "SourceError: users.csv is gone" in html
    assert html.count('<span class="badge succeeded">succeeded</span>') == 2


def test_web_run_page_shows_personas_leaderboard_and_charts(client: TestClient, demo: Demo) -> None:
    response = client.get(f"/runs/{demo.second_run}")
    assert response.status_code == 200
    html = response.text
    for pid in demo.personas:
        assert f'href="/personas/{pid}"' in html
    assert 'table class="board"' in html and '<span class="chosen">chosen</span>' in html
    assert html.count('src="data:image/svg+xml;base64,') == 5
    assert f'href="/runs/{demo.first_run}"' in html  # matched to the previous run
    assert "notice" not in html


def test_web_run_page_latest_is_the_newest_succeeded_run(client: TestClient, demo: Demo) -> None:
    assert demo.second_run in client.get("/runs/latest").text


def test_web_run_page_of_failed_run_shows_its_error(client: TestClient, demo: Demo) -> None:
    html = client.get(f"/runs/{demo.failed_run}").text
    assert "SourceError: users.csv is gone" in html
    assert 'id="leaderboard"' not in html


def test_web_run_page_without_report_data_says_which_charts_are_missing(
    client: TestClient, store: Store, demo: Demo
) -> None:
    with store.write() as conn:
        conn.execute(sa.delete(t.reports).where(t.reports.c.run_id == demo.first_run))
    html = client.get(f"/runs/{demo.first_run}").text
    assert "recorded before apg stored report data" in html
    assert "the map of users and the hierarchical tree are unavailable" in html
    assert html.count('src="data:image/svg+xml;base64,') == 2  # elbow and candidates
    for pid in demo.personas:
        assert f'href="/personas/{pid}"' in html


def test_web_report_download_is_the_self_contained_page(client: TestClient, demo: Demo) -> None:
    response = client.get(f"/runs/{demo.second_run}/report.html")
    assert response.status_code == 200
    assert response.headers["content-disposition"].startswith("attachment;")
    assert f"<title>Personas · {demo.second_run}</title>" in response.text


def test_web_unknown_run_is_404_with_suggestion(client: TestClient, demo: Demo) -> None:
    response = client.get(f"/runs/{demo.second_run[:-1]}")
    assert response.status_code == 404
    assert "did you mean" in response.text


def test_web_personas_list_filters_by_review_state(client: TestClient, demo: Demo) -> None:
    everyone = client.get("/personas").text
    drafts = client.get("/personas?status=draft").text
    approved = client.get("/personas?status=approved").text
    assert all(f'href="/personas/{p}"' in everyone for p in demo.personas)
    assert f'href="/personas/{demo.changed}"' in drafts
    assert f'href="/personas/{demo.steady}"' not in drafts
    assert f'href="/personas/{demo.steady}"' in approved
    assert f'href="/personas/{demo.changed}"' not in approved
    rejected = client.get("/personas?status=rejected").text
    assert "No personas with review state “rejected”" in rejected


def test_web_personas_list_rejects_unknown_status(client: TestClient) -> None:
    response = client.get("/personas?status=maybe")
    assert response.status_code == 400
    assert "status must be one of draft, approved, rejected" in response.text


def test_web_persona_page_shows_narrative_facts_validation_drift_and_versions(
    client: TestClient, store: Store, demo: Demo
) -> None:
    html = client.get(f"/personas/{demo.changed}").text
    body = review.history(store, demo.changed)[-1]["body"]
    assert "Review draft v2" in html
    assert str(escape(body["goals"][0]["text"])) in html  # "everyone's" -> "everyone&#39;s"
    assert 'class="facts"' in html and 'class="cited"' in html
    assert 'Validation: <span class="badge approved">passed</span>' in html
    assert "Drift vs the previous run" in html and "drift score" in html
    assert "Changes since approved v1" in html
    assert html.count('class="version"') == 2
    assert f'href="/runs/{demo.first_run}"' in html  # history across runs


def test_web_persona_page_of_unknown_persona_is_404(client: TestClient) -> None:
    response = client.get("/personas/P-zzzz")
    assert response.status_code == 404
    assert "no persona 'P-zzzz'" in response.text.replace("&#39;", "'")


def test_web_approve_records_what_the_cli_records(
    client: TestClient, store: Store, demo: Demo
) -> None:
    page = f"/personas/{demo.changed}"
    response = _post(client, f"{page}/approve", page, by="rita", note="reads right", version="2")
    assert response.status_code == 303  # type: ignore[attr-defined]
    v = review.history(store, demo.changed)[-1]
    assert (v["version"], v["status"], v["reviewed_by"], v["review_note"]) == (
        2,
        "approved",
        "rita",
        "reads right",
    )
    html = client.get(page).text
    assert "Approved v2 of" in html  # the flash message, shown once
    assert "Approved v2 of" not in client.get(page).text
    assert 'value="rita"' in html  # remembered for the next form


def test_web_approve_of_reviewed_version_is_refused_with_reason(
    client: TestClient, demo: Demo
) -> None:
    page = f"/personas/{demo.changed}"
    response = _post(client, f"{page}/approve", page, by="rita", version="1")
    assert response.status_code == 409  # type: ignore[attr-defined]
    assert "it is already approved by ana" in response.text  # type: ignore[attr-defined]


def test_web_reject_needs_a_note(client: TestClient, store: Store, demo: Demo) -> None:
    page = f"/personas/{demo.changed}"
    response = _post(client, f"{page}/reject", page, by="rita", note=" ", version="2")
    assert response.status_code == 409  # type: ignore[attr-defined]
    assert "rejecting needs a note saying why" in response.text  # type: ignore[attr-defined]
    assert review.history(store, demo.changed)[-1]["status"] == "draft"
    response = _post(client, f"{page}/reject", page, by="rita", note="invented", version="2")
    assert response.status_code == 303  # type: ignore[attr-defined]
    v = review.history(store, demo.changed)[-1]
    assert (v["status"], v["review_note"]) == ("rejected", "invented")


def test_web_review_action_needs_a_reviewer_name(client: TestClient, demo: Demo) -> None:
    page = f"/personas/{demo.changed}"
    response = _post(client, f"{page}/approve", page, by="  ", version="2")
    assert response.status_code == 409  # type: ignore[attr-defined]
    assert "give your name" in response.text  # type: ignore[attr-defined]


def test_web_edit_adds_a_draft_version_with_only_the_changed_fields(
    client: TestClient, store: Store, demo: Demo
) -> None:
    page = f"/personas/{demo.steady}"
    before = review.history(store, demo.steady)[-1]["body"]
    goals = "\n".join(g["text"] for g in before["goals"][:1]) + "\nA brand new goal"
    response = _post(
        client,
        f"{page}/edit",
        page,
        base_version="1",
        by="bob",
        note="workshop",
        name="Steady Regular",
        tagline=before["tagline"],
        summary=before["summary"],
        goals=goals,
        frustrations="\n".join(f["text"] for f in before["frustrations"]),
        quote=before.get("quote") or "",
    )
    assert response.status_code == 303  # type: ignore[attr-defined]
    versions = review.history(store, demo.steady)
    v = versions[-1]
    assert (v["version"], v["status"], v["origin"], v["created_by"], v["note"]) == (
        2,
        "draft",
        "edited",
        "bob",
        "workshop",
    )
    assert v["body"]["name"] == "Steady Regular"
    assert v["body"]["goals"][0] == before["goals"][0]  # unchanged text keeps its facts
    assert v["body"]["goals"][1] == {"text": "A brand new goal", "facts": []}
    html = client.get(page).text
    assert "+ name: Steady Regular" in html and "− name: " in html


def test_web_edit_without_changes_is_refused(client: TestClient, demo: Demo) -> None:
    page = f"/personas/{demo.steady}"
    response = _post(client, f"{page}/edit", page, base_version="1", by="bob")
    assert response.status_code == 409  # type: ignore[attr-defined]
    assert "nothing changed" in response.text  # type: ignore[attr-defined]


def test_web_edit_on_a_stale_page_keeps_the_text_and_refuses(
    client: TestClient, store: Store, demo: Demo
) -> None:
    page = f"/personas/{demo.steady}"
    html = client.get(page).text
    review.edit(store, demo.steady, {"name": "Someone Else's Name"}, by="carol")
    response = client.post(
        f"{page}/edit",
        data={"csrf": csrf_of(html), "base_version": "1", "by": "bob", "name": "Mine"},
    )
    assert response.status_code == 409
    assert "v2 was added by carol after you opened this page" in response.text
    assert 'value="Mine"' in response.text
    assert len(review.history(store, demo.steady)) == 2


def test_web_narrative_from_a_model_is_shown_as_text(
    client: TestClient, store: Store, demo: Demo
) -> None:
    attack = "</textarea><script>alert(1)</script><img src=x onerror=alert(2)>"
    name = attack[: attack.index("<img")]  # names are capped at 60 characters
    review.edit(store, demo.steady, {"name": name, "summary": attack}, by="mallory")
    review.approve(store, demo.steady, by="ana")  # the current narrative everywhere
    for path in (f"/personas/{demo.steady}", f"/runs/{demo.second_run}", "/personas"):
        html = client.get(path).text
        assert "<script>alert" not in html and "<img src=x" not in html, path
        assert "</textarea><" not in html, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, path


def test_web_degraded_run_shows_its_report_and_reason(
    client: TestClient, store: Store, demo: Demo
) -> None:
    with store.write() as conn:
        conn.execute(
            t.runs.update()
            .where(t.runs.c.id == demo.second_run)
            .values(status="degraded", reason="2 narratives fell back to the offline text")
        )
    html = client.get(f"/runs/{demo.second_run}").text
    assert '<span class="badge degraded">degraded</span>' in html
    assert "2 narratives fell back to the offline text" in html
    assert html.count('src="data:image/svg+xml;base64,') == 5


def test_web_run_in_progress_is_listed_without_a_report(client: TestClient, store: Store) -> None:
    run_id = "run-20990101-000000-beef"
    token = locks.new_token()
    with store.write() as conn:  # a live run: its row and the run lock held by this process
        runstate.insert_running(conn, run_id, started_at=now(), config=None, trigger="schedule")
        locks.acquire(conn, locks.RUN, token=token, command="apg run", run_id=run_id)
    assert '<span class="badge running">running</span>' in client.get("/runs").text
    html = client.get(f"/runs/{run_id}").text
    assert "schedule" in html and 'id="leaderboard"' not in html
    locks.forget(token)


def test_web_report_download_of_failed_run_is_404(client: TestClient, demo: Demo) -> None:
    response = client.get(f"/runs/{demo.failed_run}/report.html")
    assert response.status_code == 404
    assert "has no personas to report: it failed" in response.text
