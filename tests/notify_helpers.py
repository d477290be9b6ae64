"""A real webhook receiver for the notification tests: an HTTP server on 127.0.0.1 in a thread.

It records every POST (path, headers, parsed JSON body) and answers from a script: a list of
status codes used in turn (the last one repeats), where ``"hang"`` holds the request without
answering until the receiver closes.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from daemon_helpers import write_config, write_users

from apg.store import Store
from apg.store.notifications import for_run

HANG = "hang"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any


class Receiver:
    def __init__(self, script: list[int | str] | None = None) -> None:
        self.script: list[int | str] = list(script or [200])
        self.received: list[Received] = []
        self.lock = threading.Lock()
        self.closing = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with receiver.lock:
                    receiver.received.append(
                        Received(self.path, dict(self.headers.items()), json.loads(raw))
                    )
                    n = len(receiver.received)
                    answer = receiver.script[min(n, len(receiver.script)) - 1]
                if answer == HANG:
                    receiver.closing.wait(60)
                    return
                body = b'{"ok": true}' if answer == 200 else b"receiver error"
                self.send_response(int(answer))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, *_args: Any) -> None:
                pass  # a client that gave up on a hanging answer

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def url(self, path: str = "/hook") -> str:
        return self.base + path

    @property
    def bodies(self) -> list[Any]:
        with self.lock:
            return [r.body for r in self.received]

    def close(self) -> None:
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    """``receivers.append(Receiver([...]))``; all are closed afterwards."""
    made: list[Receiver] = []
    try:
        yield made
    finally:
        for r in made:
            r.close()


def notify_config(tmp_path: Path, notify: list[dict[str, Any]], **extra: Any) -> Path:
    """The daemon tests' config (users.csv beside it) with ``notify`` and other sections."""
    write_users(tmp_path / "users.csv", seed=0)
    path = write_config(tmp_path / "daemon.yaml", {"kind": "file", "path": "users.csv"})
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw.update(notify=notify, **extra)
    path.write_text(json.dumps(raw), encoding="utf-8")
    return path


def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'apg.db'}"


def recorded(url: str) -> list[dict[str, Any]]:
    """Every notification row of the database, oldest run first."""
    with Store(url) as store, store.read() as conn:
        return [n for r in store.runs() for n in for_run(conn, r["id"])]


def fast(**over: Any) -> dict[str, Any]:
    """Target settings that keep failing tests quick."""
    return {"timeout": 2, "attempts": 3, "backoff": 0.05, "max_seconds": 5, **over}
