"""A scriptable OpenAI-compatible chat-completions server on 127.0.0.1 for tests.

Real HTTP, real ``openai`` client: the server answers ``POST /v1/chat/completions`` from a
per-test script (a list of :class:`Reply`, or a function of the request body) and records
every request it received, so tests can assert on what apg sent. ``props`` makes it answer
``GET /props`` as a llama.cpp server does (``{"total_slots": 1}``); a script that stands for a
server that never answers waits on ``closing``, which is set when the server shuts down.

    with FakeOpenAI([chat_reply('{"name": ...}')]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """One scripted answer: an HTTP status, headers, a body, and a delay before answering."""

    status: int = 200
    body: str | dict[str, Any] = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False  # hang up without answering (a dropped connection)


@dataclass
class Request:
    """What the server received."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    def text(self) -> str:
        """Every message's content, joined: what the model would read."""
        return "\n".join(str(m.get("content", "")) for m in self.messages)


def chat_reply(content: str, *, finish_reason: str = "stop", delay: float = 0.0) -> Reply:
    """A 200 chat completion whose single choice has ``content``."""
    body = {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "fake-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
            }
        ],
        "usage": {"prompt_tokens": 120, "completion_tokens": 80, "total_tokens": 200},
    }
    return Reply(body=body, delay=delay)


def json_reply(obj: Any) -> Reply:
    return chat_reply(json.dumps(obj))


def error_reply(
    status: int, message: str = "error", headers: dict[str, str] | None = None
) -> Reply:
    body = {"error": {"message": message, "type": "server_error", "code": status}}
    return Reply(status=status, body=body, headers=headers or {})


Script = list[Reply] | Callable[[Request], Reply]


class FakeOpenAI:
    """A ThreadingHTTPServer in a daemon thread; use as a context manager."""

    def __init__(
        self, script: Script | None = None, *, props: dict[str, Any] | None = None
    ) -> None:
        self._script: Script = script if script is not None else []
        self._lock = threading.Lock()
        self.requests: list[Request] = []
        self.gets: list[str] = []  # paths of GET requests (not in ``requests``)
        self.props = props
        self.closing = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with fake._lock:
                    fake.gets.append(self.path)
                if self.path == "/props" and fake.props is not None:
                    self._answer(Reply(body=fake.props))
                else:
                    self._answer(error_reply(404, f"fake server: no route {self.path}"))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"_unparsed": raw.decode("utf-8", "replace")}
                req = Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                self._answer(fake._next(req))

            def _answer(self, reply: Reply) -> None:
                if reply.delay:
                    fake.closing.wait(reply.delay)
                if reply.drop:
                    self.close_connection = True
                    return
                payload = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
                data = payload.encode("utf-8")
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test): nothing to answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True
        )

    def _next(self, req: Request) -> Reply:
        with self._lock:
            self.requests.append(req)
        if req.path.rstrip("/") != "/v1/chat/completions":
            return error_reply(404, f"fake server: no route {req.path}")
        if callable(self._script):
            return self._script(req)  # outside the lock: requests may overlap
        with self._lock:
            if not self._script:
                return error_reply(500, "fake server: the test script has no reply left")
            return self._script.pop(0)

    def push(self, *replies: Reply) -> None:
        with self._lock:
            assert isinstance(self._script, list), "push() needs a list script"
            self._script.extend(replies)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closing.set()  # releases handlers that stand for a server that never answers
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


# --- test data for the narration tests: profiles built directly (aggregates plus user ids that
# must never reach a model) ---------------------------------------------------------------------

REPRESENTATIVE_IDS = ["user-000123", "user-000456", "user-000789"]
ATYPICAL_IDS = ["user-999001"]


def persona(
    persona_id: str = "P1",
    *,
    size: int = 400,
    n_users: int = 1000,
    contrasts: list[tuple[str, str, float, float, float]] | None = None,
    demographics: dict[str, Any] | None = None,
    categories: dict[str, dict[str, float]] | None = None,
) -> Any:
    """A PersonaProfile; contrasts are (feature, role, cluster_mean, population_mean, std_diff)."""
    from apg.profiles.persona import (
        Atypical,
        CategoryShare,
        Contrast,
        DemographicProfile,
        NumericSummary,
        PersonaProfile,
    )

    if contrasts is None:
        contrasts = [
            ("avg_order_value", "behavioral", 150.0, 60.0, 1.5),
            ("purchases_per_year", "behavioral", 24.0, 6.5, 1.2),
            ("nps", "attitudinal", 3.5, 6.4, -0.9),
            ("support_tickets", "behavioral", 1.7, 1.73, -0.02),
        ]
    if demographics is None:
        demographics = {
            "gender": DemographicProfile(
                kind="categorical",
                categories=[
                    CategoryShare(
                        value="female", count=240, share=0.6, population_share=0.5, lift=1.2
                    ),
                    CategoryShare(
                        value="male", count=157, share=0.3925, population_share=0.48, lift=0.8177
                    ),
                    CategoryShare(
                        value="non-binary", count=3, share=0.0075, population_share=0.02, lift=0.375
                    ),
                ],
            ),
            "age": DemographicProfile(
                kind="numeric",
                cluster=NumericSummary(mean=34.6, median=34.0, q1=29.0, q3=39.0),
                population=NumericSummary(mean=38.2, median=38.0, q1=30.0, q3=46.0),
            ),
        }
    cs = [
        Contrast(
            feature=f,
            role=r,
            cluster_mean=cm,
            population_mean=pm,
            std_diff=sd,  # type: ignore[arg-type]
            direction="higher" if sd > 0 else "lower" if sd < 0 else "same",
        )
        for f, r, cm, pm, sd in contrasts
    ]
    return PersonaProfile(
        persona_id=persona_id,
        cluster=int("0" + "".join(ch for ch in persona_id if ch.isdigit())),
        size=size,
        share=size / n_users,
        centroid={c.feature: c.cluster_mean for c in cs},
        categories=categories or {},
        contrasts=cs,
        demographics=demographics,
        representatives=list(REPRESENTATIVE_IDS),
        atypical=Atypical(count=1, ids=list(ATYPICAL_IDS)),
    )
