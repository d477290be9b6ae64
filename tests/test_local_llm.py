"""Narration against local servers: max_tokens, the per-persona budget, concurrency: auto.

The "llama.cpp-style" server here behaves like llama.cpp's OpenAI-compatible server with a
small model: it rejects ``response_format: json_schema`` (400), serves one request at a time
(one slot, reported at ``GET /props``), and in JSON mode generates until ``max_tokens`` (then
answers truncated JSON with ``finish_reason: length``) or, without ``max_tokens``, forever.
"""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeOpenAI, Reply, Request, chat_reply, error_reply, persona
from pydantic import ValidationError
from test_narration_llm import GOOD, good, records

from apg.config import NarrationConfig
from apg.narration import NarrationContext, make_narrator
from apg.narration.exchange import is_local_host

KEY = "sk-local"
SECONDS_PER_TOKEN = 0.0002  # the fake model's speed: 1024 tokens in ~0.2 s


class LlamaCppLike:
    """The script of a one-slot llama.cpp-style server; ``text`` says what text mode does."""

    def __init__(self, *, text: str = "valid") -> None:
        self.text = text
        self.slot = threading.Lock()
        self.busy = 0
        self.peak = 0
        self.unbounded = 0  # requests that came without max_tokens
        self.closing = threading.Event()

    def __call__(self, req: Request) -> Reply:
        fmt = req.body.get("response_format", {}).get("type")
        if fmt == "json_schema":
            return error_reply(400, "response_format type 'json_schema' is not supported")
        with self.slot:  # one slot: requests queue here
            self.busy += 1
            self.peak = max(self.peak, self.busy)
            try:
                return self._generate(req, fmt == "json_object" or self.text == "loop")
            finally:
                self.busy -= 1

    def _generate(self, req: Request, loops: bool) -> Reply:
        limit = req.body.get("max_tokens")
        if not loops:
            pid = re.search(r"Write the persona (P\d+)", req.text())
            return chat_reply(json.dumps(good(name=f"Loyal big spender {pid and pid.group(1)}")))
        if limit is None:  # generates forever: only the client giving up ends the request
            self.unbounded += 1
            self.closing.wait(30)
            return chat_reply("{" + "\n" * 1000)
        time.sleep(limit * SECONDS_PER_TOKEN)
        reply = chat_reply('{"name": "Loyal' + "\n" * (limit - 2), finish_reason="length")
        assert isinstance(reply.body, dict)
        reply.body["usage"] = {"completion_tokens": limit, "prompt_tokens": 900}
        return reply


def narrate(
    server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, n: int, **settings: Any
) -> tuple[list[Any], Any, list[str], float]:
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    config = NarrationConfig(client="openai", model="small-local-model", **settings)
    said: list[str] = []
    narrator = make_narrator(config, progress=said.append)
    ctx = NarrationContext(
        run_id="run-1", n_users=1000, outliers=None, feature_roles={}, out_dir=tmp_path / "out"
    )
    t0 = time.perf_counter()
    narratives = narrator.narrate([persona(f"P{i}") for i in range(1, n + 1)], ctx)
    return narratives, narrator, said, time.perf_counter() - t0


def test_local_server_looping_in_json_mode_moves_to_text_mode(monkeypatch, tmp_path):
    fake = LlamaCppLike(text="valid")
    with FakeOpenAI(fake, props={"total_slots": 1}) as server:
        narratives, _, said, elapsed = narrate(server, monkeypatch, tmp_path, 3)
        fake.closing.set()
    assert [n.source for n in narratives] == ["llm"] * 3
    assert fake.unbounded == 0 and fake.peak == 1
    assert all(r.body["max_tokens"] == 1024 for r in server.requests)
    modes = [r.body.get("response_format", {}).get("type", "text") for r in server.requests]
    # P1 finds out that json_schema is rejected and json_object loops; P2 and P3 start in text.
    assert modes == ["json_schema", "json_object", "text", "text", "text"]
    assert server.gets == ["/props"]
    assert any("1 request(s) at a time" in s and "reports 1 slots" in s for s in said)
    assert any("ran into narration.max_tokens (1024); using text replies" in s for s in said)
    log = records(tmp_path)
    assert [(c["persona_id"], c["mode"], c["status"]) for c in log] == [
        ("P1", "json_schema", "error"),
        ("P1", "json_object", "invalid"),
        ("P1", "text", "ok"),
        ("P2", "text", "ok"),
        ("P3", "text", "ok"),
    ]
    assert "not supported" in log[0]["error"]
    assert log[1]["error"].startswith("the reply was cut off at 1024 tokens (narration.max_tokens)")
    assert log[1]["request"]["max_tokens"] == 1024 and log[1]["usage"]["completion_tokens"] == 1024
    assert elapsed < 5


def test_local_server_looping_in_every_mode_stops_at_the_persona_budget(monkeypatch, tmp_path):
    fake = LlamaCppLike(text="loop")
    budget = 1.0
    with FakeOpenAI(fake, props={"total_slots": 1}) as server:
        narratives, _, _, elapsed = narrate(
            server, monkeypatch, tmp_path, 2, persona_budget=budget, max_reasks=10
        )
        fake.closing.set()
    assert [n.source for n in narratives] == ["offline-fallback"] * 2
    for n in narratives:
        assert n.reason and n.reason.startswith("narration.persona_budget (1 s) ran out")
        assert "cut off at 1024 tokens (narration.max_tokens)" in n.reason or (
            "waiting for the server" in n.reason
        )
    assert fake.unbounded == 0
    assert elapsed < 2 * budget + 1.5  # two personas, one at a time, plus the offline text
    log = records(tmp_path)
    assert {c["persona_id"] for c in log} == {"P1", "P2"}
    assert all(c["request"]["max_tokens"] == 1024 for c in log)
    assert all(c["error"] for c in log)  # every call says why it did not count


def test_json_mode_that_does_not_answer_in_time_moves_the_run_to_text_mode(monkeypatch, tmp_path):
    def handler(req: Request) -> Reply:
        if req.body.get("response_format", {}).get("type") == "json_schema":
            return error_reply(400, "response_format type 'json_schema' is not supported")
        if "response_format" in req.body:  # JSON mode: a reply that takes far too long
            return chat_reply(json.dumps(GOOD), delay=30)
        return chat_reply(json.dumps(good(name=f"Quiet regulars {len(server.requests)}")))

    with FakeOpenAI(handler) as server:
        narratives, narrator, said, elapsed = narrate(
            server, monkeypatch, tmp_path, 2, timeout=0.3, max_retries=0, concurrency=1
        )
    assert [n.source for n in narratives] == ["llm", "llm"]
    assert [(c.mode, c.status) for c in narrator.calls] == [
        ("json_schema", "error"),
        ("json_object", "error"),
        ("text", "ok"),
        ("text", "ok"),
    ]
    assert narrator.calls[1].error == "the request timed out after 0.3 s (narration.timeout)"
    assert any("json_object reply did not finish in time; using text" in s for s in said)
    assert elapsed < 2


def test_server_that_never_answers_is_cut_off_by_the_budget_not_retried(monkeypatch, tmp_path):
    with FakeOpenAI(lambda req: chat_reply(json.dumps(GOOD), delay=30)) as server:
        narratives, narrator, _, elapsed = narrate(
            server, monkeypatch, tmp_path, 2, persona_budget=0.5, concurrency=1
        )
    assert elapsed < 2.5
    assert len(server.requests) == 2  # no retry after the budget ran out
    assert [n.reason for n in narratives] == [
        "narration.persona_budget (0.5 s) ran out while waiting for the server"
    ] * 2
    assert [c.error for c in narrator.calls] == [narratives[0].reason] * 2


def test_retry_after_beyond_the_budget_is_not_waited_for(monkeypatch, tmp_path):
    busy = error_reply(429, "all slots busy", {"Retry-After": "20"})
    with FakeOpenAI(lambda req: busy) as server:
        (n,), _, _, elapsed = narrate(server, monkeypatch, tmp_path, 1, persona_budget=2)
    assert elapsed < 1.5 and len(server.requests) == 1
    assert n.source == "offline-fallback" and n.reason and "429" in n.reason


def test_server_that_wants_max_completion_tokens_gets_it(monkeypatch, tmp_path):
    def handler(req: Request) -> Reply:  # what OpenAI's reasoning models answer
        if "max_tokens" in req.body:
            return error_reply(
                400,
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead.",
            )
        pid = re.search(r"Write the persona (P\d+)", req.text())
        return chat_reply(json.dumps(good(name=f"Loyal big spender {pid and pid.group(1)}")))

    with FakeOpenAI(handler) as server:
        narratives, narrator, _, _ = narrate(
            server, monkeypatch, tmp_path, 2, concurrency=1, max_retries=0
        )
    assert [n.source for n in narratives] == ["llm", "llm"]
    assert len(server.requests) == 3  # one refused, then max_completion_tokens throughout
    assert [r.body.get("max_completion_tokens") for r in server.requests[1:]] == [1024, 1024]
    assert narrator.calls[0].request["max_completion_tokens"] == 1024


def test_concurrency_auto_is_one_for_a_local_server_without_props(monkeypatch, tmp_path):
    with FakeOpenAI(lambda req: chat_reply(json.dumps(GOOD))) as server:
        _, narrator, said, _ = narrate(server, monkeypatch, tmp_path, 1)
    assert narrator.concurrency() == 1 and server.gets == ["/props"]
    assert any("a local server answers one at a time" in s for s in said)


def test_concurrency_auto_uses_the_slots_the_server_reports(monkeypatch, tmp_path):
    with FakeOpenAI(lambda req: chat_reply(json.dumps(GOOD)), props={"total_slots": 3}) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        narrator: Any = make_narrator(NarrationConfig(client="openai"))
        assert narrator.concurrency() == 3


def test_concurrency_auto_for_a_hosted_api_asks_nothing(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "https://api.example.com/v1")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    narrator: Any = make_narrator(NarrationConfig(client="openai"))
    assert narrator.concurrency() == 4
    fixed: Any = make_narrator(NarrationConfig(client="openai", concurrency=2))
    assert fixed.concurrency() == 2


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("127.0.0.1", True),
        ("127.0.1.1", True),
        ("localhost", True),
        ("[::1]", True),
        ("::1", True),
        ("10.0.0.5", True),
        ("192.168.1.20", True),
        ("172.16.4.2", True),
        ("169.254.0.9", True),
        ("ollama", True),
        ("gpu-box.local", True),
        ("host.docker.internal", True),
        ("api.openai.com", False),
        ("8.8.8.8", False),
        ("example.com", False),
        ("", False),
    ],
)
def test_is_local_host(host, local):
    assert is_local_host(host) is local


def test_narration_settings_are_validated():
    config = NarrationConfig()
    assert (config.max_tokens, config.persona_budget, config.concurrency) == (1024, 60.0, "auto")
    for bad in ({"concurrency": 0}, {"concurrency": "many"}, {"max_tokens": 10}):
        with pytest.raises(ValidationError):
            NarrationConfig(**bad)
    with pytest.raises(ValidationError):
        NarrationConfig(persona_budget=0)
