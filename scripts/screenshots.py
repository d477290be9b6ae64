"""Screenshots of the review pages for the README: docs/img/report.png, docs/img/review.png
and their phone-width versions (``*-phone.png``).

Builds a demo database (sample users, two runs, a few review actions) in a temporary folder,
serves it with uvicorn in a thread and drives Debian's chromium with Playwright:

    apt-get install -y chromium && pip install playwright    # no `playwright install`
    .venv/bin/python scripts/screenshots.py [--out docs/img]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from apg.config import parse_config
from apg.sources import SourceTable
from apg.sources.sample import generate_users
from apg.store import Store
from apg.store.review import approve, edit, reject
from apg.store.runner import run_with_store
from apg.web import create_app
from apg.web.server import CHROMIUM, CHROMIUM_ARGS, serve_in_thread

CONFIG = {
    "sources": [{"kind": "file", "path": "unused.csv"}],
    "id_column": "user_id",
    "features": {
        "behavioral": [
            "logins_per_month",
            "sessions_per_week",
            "avg_session_minutes",
            "features_used",
            "purchases_per_year",
            "avg_order_value",
            "support_tickets",
            "days_since_last_login",
            "tenure_months",
        ],
        "attitudinal": ["nps", "satisfaction"],
        "demographic": ["age", "gender", "country", "occupation", "company_size"],
    },
    "search": {
        "kmeans": {"k": [2, 8]},
        "agglomerative": {"k": [2, 8], "linkage": ["ward", "average"]},
        "dbscan": {"eps": "auto", "min_samples": [10]},
        "seed": 0,
    },
    "narration": {"client": "offline"},
}
LAPTOP = (1280, 900)
PHONE = (390, 844)


def next_week(users: pd.DataFrame, seed: int = 1) -> pd.DataFrame:
    """The same users a week later: a few leave, usage drifts a little."""
    rng = np.random.default_rng(seed)
    week = users.sample(frac=0.94, random_state=seed).reset_index(drop=True)
    for col in ("logins_per_month", "sessions_per_week", "purchases_per_year"):
        week[col] = week[col] * rng.normal(1.08, 0.05, len(week))
    return week


def build_demo(db_url: str) -> str:
    """Two runs and some reviews; returns the id of the persona to show on review.png."""
    config = parse_config(CONFIG, "screenshots")
    users = generate_users(3000, seed=0)
    with Store(db_url) as store:
        first = run_with_store(config, store, table=SourceTable(frame=users))
        ids = [p.persona_id for p in first.result.personas]
        for pid in ids[:-1]:
            approve(store, pid, by="ana", note="matches the interviews")
        reject(store, ids[-1], by="ana", note="too vague; redo after the next run")
        second = run_with_store(config, store, table=SourceTable(frame=next_week(users)))
        shown = next(
            (o.persona_id for o in second.plan.outcomes if o.status == "changed"),
            second.result.personas[0].persona_id,
        )
        edit(
            store,
            shown,
            {"tagline": "Comes back every week, buys more than last month"},
            by="bob",
            note="tagline from the workshop",
        )
    return shown


def shoot(base: str, persona: str, out: Path, full_page: bool = False) -> list[Path]:
    from playwright.sync_api import sync_playwright

    shots = [
        ("report", "/runs/latest", LAPTOP),
        ("review", f"/personas/{persona}", LAPTOP),
        ("report-phone", "/runs/latest", PHONE),
        ("review-phone", f"/personas/{persona}", PHONE),
    ]
    written = []
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for name, path, size in shots:
                width, height = size
                page = browser.new_page(
                    viewport={"width": width, "height": height}, device_scale_factor=1
                )
                page.goto(base + path)
                page.wait_for_load_state("networkidle")
                target = out / f"{name}.png"
                page.screenshot(path=str(target), full_page=full_page)
                written.append(target)
                page.close()
        finally:
            browser.close()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    parser.add_argument("--full-page", action="store_true", help="Whole pages, not the top.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'demo.db'}"
        persona = build_demo(url)
        with Store(url, create=False) as store, serve_in_thread(create_app(store)) as base:
            for path in shoot(base, persona, args.out, args.full_page):
                print(f"wrote {path}")


if __name__ == "__main__":
    main()
