"""One request to an OpenAI-compatible server in one of three reply modes, and its record.

Modes, tried in this order until the server accepts one:

- ``json_schema``: ``chat.completions.parse`` with the pydantic reply model (a strict JSON schema);
- ``json_object``: JSON mode, the schema in the system prompt;
- ``text``: no response format, the schema in the system prompt.

Every request carries ``max_tokens``, so a model that loops (small models in a grammar-constrained
JSON mode emit whitespace forever) stops there with ``finish_reason: length``. Retries of
408/409/429/5xx, timeouts and connection errors (``max_retries``) are made here rather than by the
SDK, so that they keep to the persona's deadline: each request's timeout is the smaller of
``narration.timeout`` and the time left, and no retry starts (nor waits for a Retry-After) past
it. What is left is classified: a 400/422/5xx means the server rejected the mode (try the next
one), anything else that the server is unavailable for this persona (429 after retries,
timeouts, connection errors) or for the whole run (401/403/404: a key, model or URL to fix).
"""

from __future__ import annotations

import ipaddress
import json
import random
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import openai
from pydantic import ValidationError

from apg.narration.base import LlmCall, Mode
from apg.narration.grounding import PersonaReply
from apg.sources.http import retry_after_seconds

REJECTED_STATUS = (400, 422)  # plus any 5xx
FATAL_STATUS = (401, 403, 404)
RETRY_STATUS = (408, 409, 429)  # plus any 5xx: what the SDK would retry
MAX_RETRY_AFTER = 60.0  # a longer Retry-After is not waited for
MAX_RAW = 20_000  # characters of a response body kept in a record
# A valid reply is at most ~4,000 characters (MAX_SUMMARY + 10 items of MAX_ITEM and the JSON
# around them); a longer one is refused unread, so a runaway server's megabytes are never
# parsed, stored or sent back.
MAX_REPLY = 16_000
MAX_ERRORS, MAX_ERROR = 12, 300  # violations quoted in a re-ask, and characters of each


class ModeRejected(Exception):
    """The server refused this response format; the next mode may work."""


class Unavailable(Exception):
    """The server gave no usable answer after the SDK's retries."""

    def __init__(self, reason: str, *, fatal: bool = False, timed_out: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fatal = fatal  # no point asking again in this run
        self.timed_out = timed_out  # no answer in time (narration.timeout or the budget)


@dataclass
class Answer:
    content: str
    reply: PersonaReply | None
    errors: list[str]  # why the content is not a valid reply
    raw: str
    usage: dict[str, Any] | None
    cut_off: bool = False  # finish_reason "length": max_tokens ended the reply


class Redactor:
    """Removes a secret (the API key) from any text before it is logged or stored."""

    def __init__(self, secret: str | None) -> None:
        self.secret = secret if secret and len(secret) >= 4 else None

    def __call__(self, text: str) -> str:
        return text.replace(self.secret, "[redacted]") if self.secret else text


def _pydantic_errors(exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "reply"
        if err["type"] == "json_invalid":
            out.append(f"the reply is not valid JSON ({err['msg'].removeprefix('Invalid JSON: ')})")
        else:
            out.append(f"{loc}: {err['msg']}")
    return out


def bounded_errors(errors: list[str]) -> list[str]:
    """At most ``MAX_ERRORS`` violations of at most ``MAX_ERROR`` characters each: a re-ask
    quotes what was wrong, never a reply's worth of text."""
    out = [e if len(e) <= MAX_ERROR else e[: MAX_ERROR - 1] + "…" for e in errors[:MAX_ERRORS]]
    if len(errors) > MAX_ERRORS:
        out.append(f"and {len(errors) - MAX_ERRORS} more problems")
    return out


def too_long(content: str) -> str:
    return (
        f"the reply is {len(content):,} characters; a persona takes at most {MAX_REPLY:,}: "
        "send only the JSON object"
    )


def parse_reply(content: str) -> tuple[PersonaReply | None, list[str]]:
    """A reply from text that should hold one JSON object (code fences and prose tolerated)."""
    if len(content) > MAX_REPLY:
        return None, [too_long(content)]
    text = content.strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    if fenced:
        text = fenced.group(1).strip()
    if not text.startswith("{") and "{" in text and "}" in text:
        text = text[text.index("{") : text.rindex("}") + 1]
    if not text:
        return None, ["the reply is empty; send the JSON object"]
    try:
        return PersonaReply.model_validate_json(text), []
    except ValidationError as exc:
        return None, bounded_errors(_pydantic_errors(exc))


def _content_of(body: str) -> str:
    try:
        return str(json.loads(body)["choices"][0]["message"].get("content") or "")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return ""


def _usage_of(body: str) -> dict[str, Any] | None:
    try:
        usage = json.loads(body).get("usage")
    except (ValueError, AttributeError):
        return None
    return usage if isinstance(usage, dict) else None


def _finish_of(body: str) -> str | None:
    try:
        return json.loads(body)["choices"][0].get("finish_reason")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None


def _describe(exc: openai.APIError) -> str:
    if isinstance(exc, openai.APITimeoutError):
        return "the request timed out"
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        # By name: this openai release brings its own copy of httpx (``httpx2``), whose
        # classes are not httpx's.
        if type(cause).__name__ in ("RemoteProtocolError", "ReadError"):
            # Connected, then hung up mid-answer: neither a timeout nor a server that is down.
            return f"the server dropped the connection before answering ({cause})"
        return f"cannot connect to the server ({cause or exc.message})"
    if isinstance(exc, openai.APIStatusError):
        return f"the server answered {exc.status_code}: {exc.message}"
    return exc.message


def _retry_after(headers: Any) -> float | None:
    """Seconds the server asks to wait: ``retry-after-ms``, else ``retry-after`` (seconds or
    an HTTP date, read as the HTTP sources read it)."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return float(millis) / 1000.0
        except ValueError:
            pass
    return retry_after_seconds(headers.get("retry-after"))


def _backoff(attempt: int) -> float:
    """The SDK's schedule: 0.5 s doubling up to 8 s, less up to 25% jitter."""
    return min(0.5 * 2**attempt, 8.0) * (1 - 0.25 * random.random())


LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".lan", ".home.arpa")


def is_local_host(host: str) -> bool:
    """A loopback, private or link-local address, or a name that only resolves nearby."""
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(LOCAL_SUFFIXES):
        return True
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        return bool(name) and "." not in name  # a single label: a container or a LAN host
    return ip.is_loopback or ip.is_private or ip.is_link_local


def server_slots(base_url: str, api_key: str | None, timeout: float) -> int | None:
    """The parallel slots a llama.cpp server reports at ``GET /props``; None for other servers."""
    parts = urlsplit(base_url)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = httpx.get(
            f"{parts.scheme}://{parts.netloc}/props", headers=headers, timeout=timeout
        )
        slots = response.json().get("total_slots") if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    ok = isinstance(slots, int) and not isinstance(slots, bool) and slots >= 1
    return slots if ok else None


def _strict_format() -> dict[str, Any]:
    """The ``response_format`` that ``chat.completions.parse`` sends for ``PersonaReply``."""
    try:  # the SDK's own conversion (a private module: fall back if it moves)
        from openai.lib._parsing._completions import type_to_response_format_param

        return dict(type_to_response_format_param(PersonaReply))  # type: ignore[arg-type]
    except (ImportError, TypeError):
        return {
            "type": "json_schema",
            "json_schema": {
                "name": PersonaReply.__name__,
                "strict": True,
                "schema": PersonaReply.model_json_schema(),
            },
        }


@dataclass(frozen=True)
class Limits:
    """What bounds one persona's requests (``narration.*``)."""

    max_tokens: int = 1024
    timeout: float = 60.0
    max_retries: int = 2
    budget: float = 30.0  # persona_budget, named in messages


class Exchange:
    """Sends one conversation in one mode; returns an ``Answer`` and an ``LlmCall`` record."""

    def __init__(
        self,
        client: openai.OpenAI,
        *,
        model: str,
        temperature: float,
        redact: Redactor,
        limits: Limits | None = None,
    ) -> None:
        # Retries are made in ``send``, within the deadline; the SDK makes none of its own.
        self.client = client.with_options(max_retries=0)
        self.model = model
        self.temperature = temperature
        self.redact = redact
        self.limits = limits or Limits()
        # OpenAI's reasoning models refuse max_tokens and want max_completion_tokens; most
        # local servers know only max_tokens. Switched once when a server asks for it.
        self.tokens_param = "max_tokens"

    def request(self, messages: list[dict[str, str]], mode: str) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature,
            self.tokens_param: self.limits.max_tokens,
        }
        if mode == "json_schema":
            request["response_format"] = _strict_format()
        elif mode == "json_object":
            request["response_format"] = {"type": "json_object"}
        return request

    def cut_off(self) -> str:
        return (
            f"the reply was cut off at {self.limits.max_tokens} tokens (narration.max_tokens) "
            "before the JSON object was complete; reply with the JSON object only, shorter"
        )

    def _wants_completion_tokens(self, exc: openai.APIStatusError) -> bool:
        return (
            exc.status_code == 400
            and self.tokens_param == "max_tokens"
            and "max_completion_tokens" in str(exc.message)
        )

    def _retry_wait(
        self, attempt: int, deadline: float | None, response: httpx.Response | None
    ) -> float | None:
        """Seconds to wait before retrying, or None: no retry (not retryable, none left, or
        the wait would end past the deadline)."""
        if attempt >= self.limits.max_retries:
            return None
        after = None
        if response is not None:
            hint = response.headers.get("x-should-retry")
            status = response.status_code
            if hint == "false" or (hint != "true" and status not in RETRY_STATUS and status < 500):
                return None
            after = _retry_after(response.headers)
            if after is not None and after > MAX_RETRY_AFTER:
                return None
        wait = after if after is not None and after > 0 else _backoff(attempt)
        if deadline is not None and time.monotonic() + wait >= deadline:
            return None
        return wait

    def send(
        self,
        messages: list[dict[str, str]],
        mode: Mode,
        record: dict[str, Any],
        deadline: float | None = None,
    ) -> tuple[Answer | None, LlmCall, Exception | None]:
        """One call, retried as the SDK would but never past ``deadline`` (``time.monotonic``).

        The exception, if any, is ``ModeRejected`` or ``Unavailable``.
        """
        started = datetime.now(UTC).isoformat(timespec="milliseconds")
        t0 = time.perf_counter()
        answer: Answer | None = None
        problem: Exception | None = None
        raw: str | None = None
        error: str | None = None
        attempt = 0
        while True:
            timeout, limited = self.limits.timeout, False
            if deadline is not None and deadline - time.monotonic() < timeout:
                timeout, limited = max(deadline - time.monotonic(), 0.01), True
            try:
                answer = self._send(messages, mode, timeout)
                raw = answer.raw
                break
            except openai.APIStatusError as exc:
                if self._wants_completion_tokens(exc):
                    self.tokens_param = "max_completion_tokens"
                    continue
                wait = self._retry_wait(attempt, deadline, exc.response)
                if wait is None:
                    raw = exc.response.text
                    error = self.redact(_describe(exc))
                    status = exc.status_code
                    if status in REJECTED_STATUS or status >= 500:
                        problem = ModeRejected(error)
                    else:
                        problem = Unavailable(error, fatal=status in FATAL_STATUS)
                    break
            except openai.APIError as exc:  # connection errors and timeouts
                wait = self._retry_wait(attempt, deadline, None)
                if wait is None:
                    error = self.redact(_describe(exc))
                    timed_out = isinstance(exc, openai.APITimeoutError)
                    if timed_out:
                        error = (
                            f"narration.persona_budget ({self.limits.budget:g} s) ran out while "
                            "waiting for the server"
                            if limited
                            else f"the request timed out after {timeout:g} s (narration.timeout)"
                        )
                    problem = Unavailable(error, timed_out=timed_out)
                    break
            time.sleep(wait)
            attempt += 1
        latency = (time.perf_counter() - t0) * 1000
        if answer is not None and answer.errors:
            error = self.redact("; ".join(answer.errors))
        call = LlmCall(
            **record,
            mode=mode,
            model=self.model,
            request=self.request(messages, mode),
            raw_response=self.redact(raw[:MAX_RAW]) if raw is not None else None,
            parsed=answer.reply.model_dump() if answer and answer.reply else None,
            status="error" if problem else ("ok" if answer and answer.reply else "invalid"),
            error=error,
            latency_ms=round(latency, 1),
            usage=answer.usage if answer else None,
            started_at=started,
        )
        return answer, call, problem

    def _send(self, messages: list[dict[str, str]], mode: str, timeout: float) -> Answer:
        chat = self.client.chat.completions.with_raw_response
        common: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature,
            self.tokens_param: self.limits.max_tokens,
            "timeout": timeout,
        }
        if mode == "json_schema":
            response: Any = chat.parse(response_format=PersonaReply, **common)
        elif mode == "json_object":
            response = chat.create(response_format={"type": "json_object"}, **common)
        else:
            response = chat.create(**common)
        raw = response.http_response.text
        if len(raw) > 8 * MAX_REPLY:  # even \u-escaped, a valid reply's body is smaller
            content = _content_of(raw)
            return Answer(content, None, [too_long(content or raw)], raw, _usage_of(raw))
        try:
            completion = response.parse()
        except ValidationError:  # the content is not a PersonaReply: say why, below
            completion = None
        except openai.LengthFinishReasonError:
            content, usage = _content_of(raw), _usage_of(raw)
            return Answer(content, None, [self.cut_off()], raw, usage, cut_off=True)
        except openai.ContentFilterFinishReasonError as exc:
            content, usage = _content_of(raw), _usage_of(raw)
            return Answer(content, None, [f"the reply was filtered ({exc})"], raw, usage)
        except (ValueError, openai.APIResponseValidationError) as exc:
            return Answer(
                "", None, [f"the server's answer is not a chat completion ({exc})"], raw, None
            )
        usage = completion.usage.model_dump() if completion and completion.usage else None
        usage = usage or _usage_of(raw)
        message = completion.choices[0].message if completion and completion.choices else None
        content = (message.content if message else None) or _content_of(raw)
        parsed = getattr(message, "parsed", None)
        if len(content) > MAX_REPLY:
            return Answer(content, None, [too_long(content)], raw, usage)
        if isinstance(parsed, PersonaReply):
            return Answer(content, parsed, [], raw, usage)
        refusal = getattr(message, "refusal", None)
        if refusal:
            return Answer(content, None, [f"the model refused: {refusal}"], raw, usage)
        reply, errors = parse_reply(content)
        if reply is None and _finish_of(raw) == "length":
            return Answer(content, None, [self.cut_off()], raw, usage, cut_off=True)
        return Answer(content, reply, errors, raw, usage)
