"""The review pages in a real browser: Debian's chromium driven by Playwright, against a real
uvicorn server in a thread and a real SQLite database.

CI: ``apt-get install -y chromium`` and ``pip install playwright`` (never ``playwright
install``). These tests skip, saying why, only when either is missing.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from typing import Any

import pytest
from web_helpers import TOKEN, Demo, demo, demo_template, store

from apg.store import Store, review
from apg.web import create_app
from apg.web.server import CHROMIUM, CHROMIUM_ARGS, serve_in_thread

__all__ = ["demo", "demo_template", "store"]  # fixtures

PHONE = {"width": 390, "height": 844}


def _missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed: pip install playwright (no `playwright install`)"
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} not found: apt-get install -y chromium"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    p = context.new_page()
    p.set_default_timeout(15_000)
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    # Refused forms answer 4xx on purpose; a CSP violation ("Refused to ...") is a bug.
    p.on("console", lambda m: errors.append(m.text) if "Refused to" in m.text else None)
    yield p
    context.close()
    assert errors == [], errors  # no script errors, no CSP violations


@pytest.fixture
def site(store: Store) -> Iterator[str]:
    with serve_in_thread(create_app(store)) as url:
        yield url


def test_browser_review_flow_edit_then_approve_is_in_the_database(
    page: Any, site: str, store: Store, demo: Demo
) -> None:
    page.goto(site + "/runs")
    page.click(f"a[href='/runs/{demo.second_run}']")
    page.wait_for_selector("#leaderboard")
    assert page.locator("figure img").count() == 5
    page.click(f"h3 a[href='/personas/{demo.steady}']")
    page.wait_for_selector("#edit")
    page.click("#edit summary")
    page.fill("#f-name", "Steady Regular")
    page.fill("#edit-by", "Rita Reviewer")
    page.fill("#edit-note", "name from the workshop")
    page.click("text=Save as a new draft")
    page.wait_for_selector(".flash")
    assert "Saved your edit as draft v2" in page.inner_text(".flash")
    assert page.input_value("#review-by") == "Rita Reviewer"  # remembered
    page.click("button.approve")
    page.wait_for_selector(".flash")
    assert "Approved v2" in page.inner_text(".flash")
    assert page.inner_text("h1").endswith("Steady Regular")
    v = review.history(store, demo.steady)[-1]
    assert (v["version"], v["origin"], v["created_by"], v["note"]) == (
        2,
        "edited",
        "Rita Reviewer",
        "name from the workshop",
    )
    assert (v["status"], v["reviewed_by"], v["body"]["name"]) == (
        "approved",
        "Rita Reviewer",
        "Steady Regular",
    )


def test_browser_reject_needs_a_note(page: Any, site: str, store: Store, demo: Demo) -> None:
    page.goto(f"{site}/personas/{demo.changed}")
    page.fill("#review-by", "Rita")
    page.click("button.reject")
    page.wait_for_selector(".error-box")
    assert "rejecting needs a note" in page.inner_text(".error-box")
    page.fill("#review-note", "the numbers moved; redo")
    page.click("button.reject")
    page.wait_for_selector(".flash")
    assert review.history(store, demo.changed)[-1]["status"] == "rejected"


def test_browser_script_in_a_narrative_renders_as_text(
    page: Any, site: str, store: Store, demo: Demo
) -> None:
    attack = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
    name = "<script>window.pwned = 3</script>"  # names are at most 60 characters
    review.edit(store, demo.steady, {"name": name, "summary": attack}, by="mallory")
    review.approve(store, demo.steady, by="ana")
    dialogs: list[str] = []

    def dialog(d: Any) -> None:
        dialogs.append(d.message)
        d.dismiss()

    page.on("dialog", dialog)
    for path in (f"/personas/{demo.steady}", f"/runs/{demo.second_run}"):
        page.goto(site + path)
        page.wait_for_load_state("load")
        assert page.evaluate("window.pwned") is None
        assert attack in page.inner_text("main") and name in page.inner_text("main")
    assert page.locator("main img[src='x']").count() == 0
    assert dialogs == []


def test_browser_token_missing_or_wrong_is_refused(page: Any, store: Store, demo: Demo) -> None:
    with serve_in_thread(create_app(store, token=TOKEN)) as site:
        page.goto(f"{site}/personas/{demo.changed}")
        assert page.url.startswith(f"{site}/login")
        page.fill("#token", "not-the-token-at-all")
        page.click("main form button")
        page.wait_for_selector(".error-box")
        assert "That token is not right." in page.inner_text(".error-box")
        assert page.evaluate("document.cookie") == ""  # the session cookie is HttpOnly
        page.fill("#token", TOKEN)
        page.click("main form button")
        page.wait_for_selector(".persona-head")
        assert page.url == f"{site}/personas/{demo.changed}"
        response = page.request.get(f"{site}/runs", headers={"authorization": "Bearer wrong"})
        assert response.status == 401


def test_browser_post_without_csrf_token_is_refused(
    page: Any, site: str, store: Store, demo: Demo
) -> None:
    page.goto(f"{site}/personas/{demo.changed}")  # the browser holds a session cookie
    response = page.request.post(
        f"{site}/personas/{demo.changed}/approve", form={"by": "mallory", "version": "2"}
    )
    assert response.status == 403
    assert "CSRF token is missing or wrong" in response.text()
    page.evaluate("document.querySelector('form.review-form input[name=csrf]').value = 'x'")
    page.fill("#review-by", "mallory")
    page.click("button.approve")
    page.wait_for_selector(".error-box")
    assert "403" in page.inner_text("h1")
    assert review.history(store, demo.changed)[-1]["status"] == "draft"


@pytest.mark.parametrize("path", ["/runs", "/run", "/personas", "/persona"])
def test_browser_pages_fit_a_phone_screen(browser: Any, site: str, demo: Demo, path: str) -> None:
    target = {
        "/run": f"/runs/{demo.second_run}",
        "/persona": f"/personas/{demo.changed}",
    }.get(path, path)
    context = browser.new_context(viewport=PHONE, is_mobile=True)
    try:
        p = context.new_page()
        p.goto(site + target)
        p.wait_for_load_state("load")
        overflow = p.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{target} is {overflow}px wider than a phone"
        size = p.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
        assert size >= 15
    finally:
        context.close()
