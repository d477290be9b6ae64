"""``narration.client: openai``: narratives drafted by a model, checked in code, recorded.

Per persona: render the templates, ask (falling back through the reply modes of ``exchange``),
validate the reply against the fact sheet (``grounding.check``), re-ask with the violations up
to ``max_reasks`` times. A persona whose replies never validate, or whose server stays down,
gets the offline narrator's text (``source: offline-fallback``, with the reason); the run
completes either way. Personas are narrated in parallel (``concurrency``); results keep the
personas' order, and duplicate names are re-asked in that order with the names taken so far.

What one persona may cost is bounded: ``max_tokens`` per reply, ``persona_budget`` seconds of
requests in all (draft, re-asks, mode fallbacks and a rename together; what is left of it is the
timeout of the next request). A reply that ``max_tokens`` cut off in a JSON mode, or JSON mode
that does not answer in time, moves the run to the next mode: small local models looping in a
grammar-constrained JSON mode do that, and asking again in that mode would loop again.
``concurrency: auto`` sends one request at a time to a local server (or as many as a llama.cpp
server reports slots): more would only queue there and spend their budgets waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import openai

from apg.config import NarrationConfig
from apg.errors import NarrationError
from apg.narration.base import LlmCall, NarrationContext, sheet_for
from apg.narration.exchange import (
    Exchange,
    Limits,
    ModeRejected,
    Redactor,
    Unavailable,
    bounded_errors,
    is_local_host,
    server_slots,
)
from apg.narration.facts import FactSheet
from apg.narration.grounding import check, name_key, to_narrative
from apg.narration.offline import draft, pick_name
from apg.narration.prompts import MODES, PromptSet
from apg.profiles.narrative import Narrative
from apg.profiles.persona import PersonaProfile

MAX_REASON = 500
MAX_ECHO = 4_000  # characters of a rejected reply sent back with the re-ask
HOSTED_CONCURRENCY = 4  # concurrency: auto for a server that is not on this machine or LAN
PROBE_TIMEOUT = 2.0  # seconds for GET /props, the slot count of a local llama.cpp server


@dataclass(frozen=True)
class Turn:
    """One message after the system prompt, rendered per reply mode when it is sent."""

    kind: Literal["persona", "assistant", "reask"]
    text: str = ""  # the assistant's reply
    errors: tuple[str, ...] = ()  # what a re-ask says is wrong
    avoid: tuple[str, ...] = ()  # names taken by other personas


def make_client(config: NarrationConfig) -> openai.OpenAI:
    """The SDK client; it reads ``OPENAI_API_KEY`` and ``OPENAI_BASE_URL`` itself."""
    try:
        return openai.OpenAI(timeout=config.timeout, max_retries=config.max_retries)
    except openai.OpenAIError:
        raise NarrationError(
            "narration.client is 'openai' but OPENAI_API_KEY is not set; export it (any "
            "non-empty value for a local server that ignores keys), set OPENAI_BASE_URL="
            "http://HOST:PORT/v1 for a server other than OpenAI's, or use --llm offline"
        ) from None


class _Run:
    """What the personas of one ``narrate`` call share: the reply mode that works, the records."""

    def __init__(self, log_path: Path | None) -> None:
        self.lock = threading.Lock()
        self.mode_index = 0
        self.broken: str | None = None  # set when the server cannot serve this run at all
        self.calls: list[LlmCall] = []
        self.log_path = log_path
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log_path.write_text("", encoding="utf-8")

    def record(self, call: LlmCall) -> None:
        with self.lock:
            self.calls.append(call)
            if self.log_path is not None:
                with self.log_path.open("a", encoding="utf-8") as fh:
                    fh.write(call.model_dump_json() + "\n")

    def rewrite(self, calls: list[LlmCall]) -> None:
        if self.log_path is None:
            return
        tmp = self.log_path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(c.model_dump_json() + "\n" for c in calls), encoding="utf-8")
        tmp.replace(self.log_path)


@dataclass
class _Outcome:
    narrative: Narrative | None = None
    reason: str | None = None
    turns: list[Turn] = field(default_factory=list)
    seq: int = 0
    spent: float = 0.0  # seconds of narration.persona_budget used so far


class OpenAINarrator:
    """Narrates through any OpenAI-compatible chat-completions server."""

    def __init__(
        self,
        config: NarrationConfig,
        *,
        progress: Callable[[str], None] | None = None,
        client: openai.OpenAI | None = None,
    ) -> None:
        self.config = config
        self.progress = progress
        self.prompts = PromptSet(config.prompts_dir)
        self.prompts.validate()
        self.client = client or make_client(config)
        self.redact = Redactor(self.client.api_key)
        limits = Limits(
            max_tokens=config.max_tokens,
            timeout=config.timeout,
            max_retries=config.max_retries,
            budget=config.persona_budget,
        )
        self.exchange = Exchange(
            self.client,
            model=config.model,
            temperature=config.temperature,
            redact=self.redact,
            limits=limits,
        )
        self.calls: list[LlmCall] = []
        self._concurrency: int | None = None

    def _say(self, message: str) -> None:
        if self.progress is not None:
            self.progress(f"narrate: {self.redact(message)}")

    def narrate(self, personas: list[PersonaProfile], ctx: NarrationContext) -> list[Narrative]:
        """One narrative per persona, in order; ``self.calls`` holds this call's LLM records."""
        sheets = [
            sheet_for(p, ctx, self.config.min_cell, self.config.significance) for p in personas
        ]
        run = _Run(ctx.out_dir / "llm_calls.jsonl" if ctx.out_dir is not None else None)
        workers = max(1, min(self.concurrency(), len(personas)))
        with ThreadPoolExecutor(workers, thread_name_prefix="apg-narrate") as pool:
            outcomes = list(pool.map(lambda s: self._persona(s, ctx, run), sheets))
        narratives = self._finish(outcomes, sheets, ctx, run)
        order = {s.persona_id: i for i, s in enumerate(sheets)}
        self.calls = sorted(run.calls, key=lambda c: (order.get(c.persona_id, 0), c.seq))
        run.rewrite(self.calls)
        return narratives

    def concurrency(self) -> int:
        """``narration.concurrency``; for ``auto``, what suits the server (asked once)."""
        if self.config.concurrency != "auto":
            return self.config.concurrency
        if self._concurrency is None:
            base = str(self.client.base_url)
            if not is_local_host(urlsplit(base).hostname or ""):
                self._concurrency = HOSTED_CONCURRENCY
                return self._concurrency
            timeout = min(PROBE_TIMEOUT, self.config.timeout)
            slots = server_slots(base, self.client.api_key, timeout)
            self._concurrency = slots or 1
            why = f"it reports {slots} slots" if slots else "a local server answers one at a time"
            self._say(
                f"{self._concurrency} request(s) at a time to {base} ({why}; "
                "set narration.concurrency to change)"
            )
        return self._concurrency

    def _messages(self, turns: list[Turn], sheet: FactSheet, mode: str) -> list[dict[str, str]]:
        out = [{"role": "system", "content": self.prompts.system(mode)}]
        for turn in turns:
            if turn.kind == "persona":
                content = self.prompts.persona(sheet, mode, list(turn.avoid))
                out.append({"role": "user", "content": content})
            elif turn.kind == "assistant":
                out.append({"role": "assistant", "content": turn.text})
            else:
                content = self.prompts.reask(list(turn.errors), mode, list(turn.avoid))
                out.append({"role": "user", "content": content})
        return out

    def _ask(
        self,
        turns: list[Turn],
        sheet: FactSheet,
        ctx: NarrationContext,
        run: _Run,
        outcome: _Outcome,
        purpose: str,
        avoid: list[str],
        deadline: float,
    ) -> tuple[str, Narrative | None, list[str]]:
        """One answer, trying the next reply mode when the server rejects one or a JSON mode
        runs into ``max_tokens``.

        Returns (content, narrative if valid, violations); raises ``Unavailable``.
        """
        index = run.mode_index
        while True:
            mode = MODES[index]
            messages = self._messages(turns, sheet, mode)
            outcome.seq += 1
            record = {
                "run_id": ctx.run_id,
                "persona_id": sheet.persona_id,
                "seq": outcome.seq,
                "purpose": purpose,
                "template_hash": self.prompts.hash,
            }
            answer, call, problem = self.exchange.send(messages, mode, record, deadline)
            # A JSON mode that runs into max_tokens, or JSON mode that does not answer in time,
            # is taken as a model looping in it: the rest of the run uses the next mode.
            looped = answer is not None and answer.cut_off and mode != "text"
            stalled = isinstance(problem, Unavailable) and problem.timed_out
            if looped or (stalled and mode == "json_object"):
                if answer is not None:
                    call.validation = {"ok": False, "violations": answer.errors}
                run.record(call)
                with run.lock:
                    run.mode_index = max(run.mode_index, index + 1)
                what = (
                    f"ran into narration.max_tokens ({self.config.max_tokens})"
                    if looped
                    else "did not finish in time"
                )
                self._say(
                    f"{sheet.persona_id}: the {mode} reply {what}; using "
                    f"{MODES[index + 1]} replies from now on"
                )
                if time.monotonic() >= deadline:
                    raise Unavailable(
                        self._out_of_time(answer.errors) if answer else str(problem),
                        timed_out=True,
                    )
                index += 1
                continue
            if problem is None and answer is not None:
                break
            run.record(call)
            if isinstance(problem, ModeRejected) and index + 1 < len(MODES):
                self._say(
                    f"{sheet.persona_id}: {mode} replies failed ({problem}); trying "
                    f"{MODES[index + 1]}"
                )
                index += 1
                continue
            fatal = isinstance(problem, Unavailable) and problem.fatal
            raise Unavailable(str(problem), fatal=fatal)
        with run.lock:
            if index > run.mode_index:
                run.mode_index = index
                self._say(f"the server accepts {mode} replies; using them for the rest of the run")
        narrative, errors = None, list(answer.errors)
        if answer.reply is not None:
            candidate = to_narrative(answer.reply)
            result = check(
                candidate, sheet, avoid_names=avoid, system_prompt=messages[0]["content"]
            )
            errors = result.violations
            candidate.validation = {**result.model_dump(), "mode": mode, "calls": outcome.seq}
            narrative = candidate if result.ok else None
        call.validation = {"ok": not errors, "violations": errors}
        call.status = "ok" if not errors else "invalid"
        run.record(call)
        if narrative is not None:
            narrative.template_hash = self.prompts.hash
            narrative.model = self.config.model
            narrative.facts = sheet.as_dict()
        return answer.content, narrative, errors

    def _converse(
        self,
        outcome: _Outcome,
        sheet: FactSheet,
        ctx: NarrationContext,
        run: _Run,
        purpose: str,
        avoid: list[str],
        attempts: int,
    ) -> Narrative | None:
        """Ask, then re-ask with the violations; ``outcome.reason`` says why nothing validated."""
        started = time.monotonic()
        try:
            return self._attempts(
                outcome, sheet, ctx, run, purpose, avoid, attempts, started + self._left(outcome)
            )
        finally:
            outcome.spent += time.monotonic() - started

    def _left(self, outcome: _Outcome) -> float:
        return self.config.persona_budget - outcome.spent

    def _out_of_time(self, errors: list[str]) -> str:
        reason = f"narration.persona_budget ({self.config.persona_budget:g} s) ran out"
        return self.redact(reason + (": " + "; ".join(errors) if errors else ""))[:MAX_REASON]

    def _attempts(
        self,
        outcome: _Outcome,
        sheet: FactSheet,
        ctx: NarrationContext,
        run: _Run,
        purpose: str,
        avoid: list[str],
        attempts: int,
        deadline: float,
    ) -> Narrative | None:
        errors: list[str] = []
        for attempt in range(attempts):
            if run.broken:
                outcome.reason = f"not attempted: {run.broken}"
                return None
            if time.monotonic() >= deadline:
                outcome.reason = self._out_of_time(errors)
                return None
            try:
                content, narrative, errors = self._ask(
                    outcome.turns,
                    sheet,
                    ctx,
                    run,
                    outcome,
                    purpose if attempt == 0 else "reask",
                    avoid,
                    deadline,
                )
            except Unavailable as exc:
                outcome.reason = self.redact(exc.reason)
                if exc.fatal:
                    with run.lock:
                        run.broken = run.broken or outcome.reason
                return None
            # The conversation carries a reply back at most MAX_ECHO characters long: a re-ask
            # quotes the violations, it does not resend a runaway reply.
            shown = content if len(content) <= MAX_ECHO else content[:MAX_ECHO] + " […]"
            outcome.turns.append(Turn("assistant", text=shown))
            if narrative is not None:
                self._say(f"{sheet.persona_id}: drafted by the model ({outcome.seq} calls)")
                return narrative
            errors = bounded_errors(errors)
            outcome.turns.append(Turn("reask", errors=tuple(errors), avoid=tuple(avoid)))
            if attempt + 1 < attempts:
                self._say(
                    f"{sheet.persona_id}: reply rejected ({len(errors)} problems: "
                    f"{errors[0]}); re-asking ({attempt + 1}/{attempts - 1})"
                )
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        reason = f"no valid reply after {tries}: " + "; ".join(errors)
        outcome.reason = self.redact(reason)[:MAX_REASON]
        return None

    def _persona(self, sheet: FactSheet, ctx: NarrationContext, run: _Run) -> _Outcome:
        outcome = _Outcome(turns=[Turn("persona")])
        outcome.narrative = self._converse(
            outcome, sheet, ctx, run, "draft", [], 1 + self.config.max_reasks
        )
        return outcome

    def _finish(
        self, outcomes: list[_Outcome], sheets: list[FactSheet], ctx: NarrationContext, run: _Run
    ) -> list[Narrative]:
        """Fallbacks for failed personas, and distinct names, in persona order."""
        used: list[str] = list(ctx.taken_names)
        out: list[Narrative] = []
        for outcome, sheet in zip(outcomes, sheets, strict=True):
            narrative = outcome.narrative
            if narrative is not None and name_key(narrative.name) in {name_key(u) for u in used}:
                narrative = self._rename(outcome, narrative, sheet, ctx, run, used)
            if narrative is None:
                reason = outcome.reason or "no valid reply"
                self._say(f"{sheet.persona_id}: using the offline text ({reason})")
                narrative = draft(sheet, used_names=used, source="offline-fallback", reason=reason)
                narrative.template_hash = self.prompts.hash
                narrative.model = self.config.model
            used.append(narrative.name)
            out.append(narrative)
        return out

    def _rename(
        self,
        outcome: _Outcome,
        narrative: Narrative,
        sheet: FactSheet,
        ctx: NarrationContext,
        run: _Run,
        used: list[str],
    ) -> Narrative:
        """Re-ask for a name not in ``used``; a numeral makes it distinct as a last resort."""
        if self.config.max_reasks > 0 and not run.broken:
            taken = f"name: {narrative.name!r} is already used by another persona of this run"
            outcome.turns.append(Turn("reask", errors=(taken,), avoid=tuple(used)))
            renamed = self._converse(
                outcome, sheet, ctx, run, "rename", list(used), self.config.max_reasks
            )
            if renamed is not None:
                return renamed
        new = pick_name([narrative.name], used)
        self._say(f"{sheet.persona_id}: name {narrative.name!r} taken; using {new!r}")
        return narrative.model_copy(
            update={
                "name": new,
                "validation": {**(narrative.validation or {}), "renamed_from": narrative.name},
            }
        )
