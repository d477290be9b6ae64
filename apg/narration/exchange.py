"""One request to an OpenAI-compatible server in one of three reply modes, and its record.

Modes, tried in this order until the server accepts one:

- ``json_schema``: ``chat.completions.parse`` with the pydantic reply model (a strict JSON schema);
- ``json_object``: JSON mode, the schema in the system prompt;
- ``text``: no response format, the schema in the system prompt.

The SDK retries 408/409/429/5xx and timeouts (``max_retries``); what is left is classified here:
a 400/422/5xx means the server rejected the mode (try the next one), anything else that the
server is unavailable for this persona (429 after retries, timeouts, connection errors) or for
the whole run (401/403/404: a key, model or URL to fix).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import openai
from pydantic import ValidationError

from apg.narration.base import LlmCall, Mode
from apg.narration.grounding import PersonaReply

REJECTED_STATUS = (400, 422)  # plus any 5xx
FATAL_STATUS = (401, 403, 404)
MAX_RAW = 100_000  # characters of a response body kept in a record


class ModeRejected(Exception):
    """The server refused this response format; the next mode may work."""


class Unavailable(Exception):
    """The server gave no usable answer after the SDK's retries."""

    def __init__(self, reason: str, *, fatal: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fatal = fatal  # no point asking again in this run


@dataclass
class Answer:
    content: str
    reply: PersonaReply | None
    errors: list[str]  # why the content is not a valid reply
    raw: str
    usage: dict[str, Any] | None


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


def parse_reply(content: str) -> tuple[PersonaReply | None, list[str]]:
    """A reply from text that should hold one JSON object (code fences and prose tolerated)."""
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
        return None, _pydantic_errors(exc)


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


def _describe(exc: openai.APIError) -> str:
    if isinstance(exc, openai.APITimeoutError):
        return "the request timed out"
    if isinstance(exc, openai.APIConnectionError):
        return f"cannot connect to the server ({exc.__cause__ or exc.message})"
    if isinstance(exc, openai.APIStatusError):
        return f"the server answered {exc.status_code}: {exc.message}"
    return exc.message


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


class Exchange:
    """Sends one conversation in one mode; returns an ``Answer`` and an ``LlmCall`` record."""

    def __init__(
        self, client: openai.OpenAI, *, model: str, temperature: float, redact: Redactor
    ) -> None:
        self.client = client
        self.model = model
        self.temperature = temperature
        self.redact = redact

    def request(self, messages: list[dict[str, str]], mode: str) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature,
        }
        if mode == "json_schema":
            request["response_format"] = _strict_format()
        elif mode == "json_object":
            request["response_format"] = {"type": "json_object"}
        return request

    def send(
        self, messages: list[dict[str, str]], mode: Mode, record: dict[str, Any]
    ) -> tuple[Answer | None, LlmCall, Exception | None]:
        """One call. The exception, if any, is ``ModeRejected`` or ``Unavailable``."""
        started = datetime.now(UTC).isoformat(timespec="milliseconds")
        t0 = time.perf_counter()
        answer: Answer | None = None
        problem: Exception | None = None
        raw: str | None = None
        error: str | None = None
        try:
            answer = self._send(messages, mode)
            raw = answer.raw
        except openai.APIStatusError as exc:
            raw = exc.response.text
            error = self.redact(_describe(exc))
            status = exc.status_code
            if status in REJECTED_STATUS or status >= 500:
                problem = ModeRejected(error)
            else:
                problem = Unavailable(error, fatal=status in FATAL_STATUS)
        except openai.APIError as exc:  # connection errors and timeouts, after retries
            error = self.redact(_describe(exc))
            problem = Unavailable(error)
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

    def _send(self, messages: list[dict[str, str]], mode: str) -> Answer:
        chat = self.client.chat.completions.with_raw_response
        common: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature,
        }
        if mode == "json_schema":
            response: Any = chat.parse(response_format=PersonaReply, **common)
        elif mode == "json_object":
            response = chat.create(response_format={"type": "json_object"}, **common)
        else:
            response = chat.create(**common)
        raw = response.http_response.text
        try:
            completion = response.parse()
        except ValidationError:  # the content is not a PersonaReply: say why, below
            completion = None
        except (openai.LengthFinishReasonError, openai.ContentFilterFinishReasonError) as exc:
            content, usage = _content_of(raw), _usage_of(raw)
            return Answer(content, None, [f"the reply was cut off or filtered ({exc})"], raw, usage)
        except (ValueError, openai.APIResponseValidationError) as exc:
            return Answer(
                "", None, [f"the server's answer is not a chat completion ({exc})"], raw, None
            )
        usage = completion.usage.model_dump() if completion and completion.usage else None
        usage = usage or _usage_of(raw)
        message = completion.choices[0].message if completion and completion.choices else None
        content = (message.content if message else None) or _content_of(raw)
        parsed = getattr(message, "parsed", None)
        if isinstance(parsed, PersonaReply):
            return Answer(content, parsed, [], raw, usage)
        refusal = getattr(message, "refusal", None)
        if refusal:
            return Answer(content, None, [f"the model refused: {refusal}"], raw, usage)
        reply, errors = parse_reply(content)
        return Answer(content, reply, errors, raw, usage)
