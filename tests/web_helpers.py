"""Shared helpers for the web, browser and report tests: a real database with two runs.

The database is built once per session (three Gaussian segments; in the second run segment B
moves, so its persona is ``changed`` and redrafted) and copied into each test's tmp dir.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import store_helpers as h
from starlette.testclient import TestClient

from apg.store import Store, now
from apg.store.review import approve
from apg.web import create_app

BASE_URL = "http://127.0.0.1"
TOKEN = "correct-horse-battery-staple-42"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass(frozen=True)
class Demo:
    url: str
    first_run: str
    second_run: str
    changed: str  # persona redrafted by the second run (draft v2 over approved v1)
    steady: str  # continuing persona, approved in the first run
    personas: tuple[str, ...]
    failed_run: str


def build(url: str) -> Demo:
    sizes = {"A": 150, "B": 150, "C": 150}
    moved = {**h.CENTRES, "B": [13.0, 3.0, 0.0, 0.0]}
    with Store(url) as store:
        first = h.run(store, h.blobs(sizes))
        for p in first.result.personas:
            approve(store, p.persona_id, by="ana", note="first look")
        second = h.run(store, h.blobs(sizes, centres=moved))
        status = h.status_of(second)
        changed = next(p for p, s in status.items() if s == "changed")
        steady = next(p for p, s in status.items() if s == "continuing")
        failed = store.new_run_id()
        store.record_failure(failed, h.config(), "SourceError: users.csv is gone", started_at=now())
    return Demo(
        url=url,
        first_run=first.run_id,
        second_run=second.run_id,
        changed=changed,
        steady=steady,
        personas=tuple(p.persona_id for p in second.result.personas),
        failed_run=failed,
    )


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Demo]:
    path = tmp_path_factory.mktemp("web") / "template.db"
    return path, build(f"sqlite:///{path}")


@pytest.fixture
def demo(demo_template: tuple[Path, Demo], tmp_path: Path) -> Demo:
    """A fresh copy of the two-run database for one test."""
    source, built = demo_template
    target = tmp_path / "apg.db"
    shutil.copyfile(source, target)
    return Demo(**{**built.__dict__, "url": f"sqlite:///{target}"})


@pytest.fixture
def store(demo: Demo) -> Iterator[Store]:
    with Store(demo.url, create=False) as s:
        yield s


def client_for(store: Store, token: str | None = None) -> TestClient:
    return TestClient(create_app(store, token=token), base_url=BASE_URL, follow_redirects=False)


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    with client_for(store) as c:
        yield c


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)
