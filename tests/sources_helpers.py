"""Shared helpers for the tests/test_sources_*.py modules: a real HTTP server and small builders.

The server is a real ``ThreadingHTTPServer`` on 127.0.0.1 (port chosen by the OS) whose routes
are plain functions, so the HTTP source is tested through httpx and sockets, never mocks.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pandas as pd

from apg.sources import load_sources
from apg.sources.base import SourceContext


@dataclass
class Request:
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-encoded unless bytes or str
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False  # hang up without answering (a dropped connection)


Route = Callable[[Request], Reply]


class ApiServer:
    """Routes by path; records every request so tests can assert what the client sent."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                request = Request(
                    parts.path, query, {k.lower(): v for k, v in self.headers.items()}
                )
                server.requests.append(request)
                route = server.routes.get(parts.path)
                reply = route(request) if route else Reply(404, {"error": "no such route"})
                if reply.delay:
                    threading.Event().wait(reply.delay)
                if reply.drop:
                    self.close_connection = True
                    return
                if isinstance(reply.body, bytes):
                    data = reply.body
                elif isinstance(reply.body, str):
                    data = reply.body.encode()
                else:
                    data = json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def base(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base + path

    def route(self, path: str, fn: Route) -> str:
        self.routes[path] = fn
        return self.url(path)

    def __enter__(self) -> ApiServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def serve() -> Iterator[ApiServer]:
    """Body of a pytest fixture: ``server = pytest.fixture(serve)``-style use."""
    with ApiServer() as server:
        yield server


def ctx(tmp_path: Path, id_column: str = "user_id", position: int = 1) -> SourceContext:
    return SourceContext(base_dir=tmp_path, id_column=id_column, position=position)


def load(specs: list[Any], tmp_path: Path, id_column: str = "user_id") -> pd.DataFrame:
    """Validate raw spec dicts the way the config does and return the joined frame."""
    from apg.config import Config

    config = Config.model_validate(
        {"sources": specs, "id_column": id_column, "features": {"behavioral": ["x"]}}
    )
    return load_sources(config.sources, tmp_path, id_column).frame


def spec(raw: dict[str, Any]) -> Any:
    """One source spec validated through the discriminated union (as the config does)."""
    from pydantic import TypeAdapter

    from apg.sources import SourceSpec

    return TypeAdapter(SourceSpec).validate_python(raw)
