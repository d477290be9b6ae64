"""A scheduled run and a reviewer's commands on one database at the same time."""

from __future__ import annotations

import threading
import time

import store_helpers as h

from apg.store import Store, review
from apg.store import schema as t

db_url = h.db_url

HOLD = 1.0  # seconds the writer keeps its transaction open


def test_store_reader_is_not_blocked_by_open_write_transaction(db_url: str) -> None:
    with Store(db_url) as daemon, Store(db_url) as reviewer:
        first = h.run(daemon, h.blobs())
        pid = first.result.personas[0].persona_id
        started = threading.Event()
        errors: list[BaseException] = []

        def write() -> None:
            try:
                with daemon.write() as conn:
                    conn.execute(
                        t.runs.insert().values(
                            id="run-in-flight",
                            started_at="2999-01-01T00:00:00.000000Z",
                            status="succeeded",
                            apg_version="test",
                        )
                    )
                    started.set()
                    time.sleep(HOLD)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
                started.set()

        writer = threading.Thread(target=write)
        writer.start()
        assert started.wait(10)
        t0 = time.perf_counter()
        seen = [r["id"] for r in reviewer.runs()]
        read_seconds = time.perf_counter() - t0
        # A second writer (a review) waits for the first instead of failing.
        approved = review.approve(reviewer, pid, by="ana", note="while the daemon writes")
        write_seconds = time.perf_counter() - t0
        writer.join()
        assert not errors
        assert read_seconds < HOLD / 2, "the reader waited for the writer"
        assert seen == [first.run_id], "the reader saw an uncommitted run"
        assert approved["status"] == "approved"
        assert reviewer.runs()[0]["id"] == "run-in-flight"
        assert write_seconds >= HOLD * 0.5, "the second writer did not wait"


def test_store_daemon_runs_and_reviews_interleave_without_errors(db_url: str) -> None:
    with Store(db_url) as daemon, Store(db_url) as reviewer:
        first = h.run(daemon, h.blobs())
        pids = [p.persona_id for p in first.result.personas]
        errors: list[BaseException] = []

        def refresh() -> None:
            try:
                for seed in range(3):
                    h.run(daemon, h.blobs(seed=seed))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        worker = threading.Thread(target=refresh)
        worker.start()
        edits = 0
        while worker.is_alive() or edits < 5:
            pid = pids[edits % len(pids)]
            review.edit(reviewer, pid, {"summary": f"edit {edits}"}, by="bob")
            reviewer.personas()
            edits += 1
        worker.join()
        assert not errors
        assert len(reviewer.runs()) == 4
        versions = sum(len(review.history(reviewer, p)) for p in pids)
        assert versions == len(pids) + edits  # one generated draft each, plus every edit
