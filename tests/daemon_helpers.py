"""Helpers for the daemon tests: real subprocess daemons, a real SQLite file, tiny data.

A :class:`Gate` is a real HTTP source (a local server in a thread) whose reply waits until the
test opens the gate, so a daemon's run can be held in progress for as long as a test needs.
Every wait polls with short sleeps under a deadline; every process is killed in ``finally``.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pytest
import sqlalchemy as sa

from apg.sources.sample import generate_users

T = TypeVar("T")
ROWS = 300
# A small search so each run takes well under a second.
SEARCH = {"kmeans": {"k": [2, 4], "n_init": 2}, "agglomerative": None, "dbscan": None}
FEATURES = {
    "behavioral": ["logins_per_month", "sessions_per_week", "purchases_per_year"],
    "attitudinal": ["nps"],
    "demographic": ["country"],
}


def users(seed: int = 0) -> pd.DataFrame:
    return generate_users(ROWS, seed=seed)


def write_users(path: Path, seed: int = 0) -> Path:
    """Replace the file atomically, so a daemon never reads half of it."""
    part = path.with_suffix(".part")
    users(seed).to_csv(part, index=False)
    os.replace(part, path)
    return path


def write_text(path: Path, text: str) -> Path:
    part = path.with_suffix(".part")
    part.write_text(text, encoding="utf-8")
    os.replace(part, path)
    return path


def write_config(path: Path, source: dict[str, Any], **schedule: Any) -> Path:
    raw = {
        "sources": [source],
        "id_column": "user_id",
        "features": FEATURES,
        "search": SEARCH,
        "schedule": schedule,
    }
    path.write_text(json.dumps(raw), encoding="utf-8")  # JSON is YAML
    return path


def wait_for(
    probe: Callable[[], T | None], what: str, timeout: float = 30.0, log: Callable[[], str] = str
) -> T:
    """Poll ``probe`` every 0.1 s until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{log()}")
        time.sleep(0.1)


class Db:
    """Plain reads of the daemon's database (no migrations, no locks)."""

    def __init__(self, url: str) -> None:
        self.url = url
        # NullPool: no connection outlives a read, so nothing is left open after a test.
        self.engine = sa.create_engine(
            url, connect_args={"timeout": 30}, poolclass=sa.pool.NullPool
        )

    def runs(self) -> list[dict[str, Any]]:
        if not sa.inspect(self.engine).has_table("apg_runs"):
            return []
        with self.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT * FROM apg_runs ORDER BY started_at, id"))
            return [dict(r._mapping) for r in rows]

    def count(self, table: str, run_id: str) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.text(f"SELECT count(*) FROM {table} WHERE run_id = :r"), {"r": run_id}
                ).scalar()
                or 0
            )

    def locks(self) -> dict[str, dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT * FROM apg_locks"))
            return {r.name: dict(r._mapping) for r in rows}

    def close(self) -> None:
        self.engine.dispose()


class Daemon:
    """``python -m apg daemon ...`` with its log in a file."""

    def __init__(
        self, cwd: Path, config: Path, db_url: str, *args: str, name: str = "daemon"
    ) -> None:
        self.log_path = cwd / f"{name}.log"
        self._log = self.log_path.open("w", encoding="utf-8")
        command = [sys.executable, "-m", "apg", "daemon", "--config", str(config)]
        command += ["--db", db_url, "--heartbeat", "0.5", *args]
        self.proc = subprocess.Popen(
            command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=self._log, env=dict(os.environ)
        )
        self.pid = self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 20.0) -> int:
        code = self.proc.wait(timeout=timeout)
        self._log.close()
        return code

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and the exit code."""
        self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._log.close()


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    """Start daemons with ``daemons.append(Daemon(...))``; all are killed afterwards."""
    started: list[Daemon] = []
    try:
        yield started
    finally:
        for d in started:
            d.kill()


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = frame.to_dict("records")
    return [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
        for r in out
    ]


class Gate:
    """A local JSON API of users whose replies wait while the gate is closed."""

    def __init__(self, frame: pd.DataFrame, open_: bool = False) -> None:
        self.body = json.dumps(records(frame)).encode()
        self.opened = threading.Event()
        self.entered = threading.Event()  # a request arrived
        if open_:
            self.opened.set()
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                gate.entered.set()
                gate.opened.wait(60)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(gate.body)))
                self.end_headers()
                self.wfile.write(gate.body)

            def log_message(self, *_args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, *_args: Any) -> None:
                pass  # a killed daemon's connection: nothing to report

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/users"

    def source(self) -> dict[str, Any]:
        return {"kind": "http", "url": self.url, "timeout": 120, "retries": 0}

    def close(self) -> None:
        self.opened.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gate() -> Iterator[Gate]:
    g = Gate(users(0))
    try:
        yield g
    finally:
        g.close()
