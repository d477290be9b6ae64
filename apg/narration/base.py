"""The narrator interface the pipeline calls, the record of an LLM call, and the factory."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from apg.narration.display import Labels
from apg.narration.facts import FactSheet, build_fact_sheet
from apg.profiles.narrative import Narrative
from apg.profiles.persona import OutlierProfile, PersonaProfile


@dataclass
class NarrationContext:
    run_id: str
    n_users: int  # users clustered
    outliers: OutlierProfile | None
    feature_roles: dict[str, str]  # feature -> behavioral|attitudinal
    out_dir: Path | None  # where llm_calls.jsonl goes (None: don't write)
    # Names of this run's personas that keep an earlier narrative (carried over by identity
    # matching): new names must differ from them too.
    taken_names: tuple[str, ...] = ()
    # The config's labels: display names, value labels, number formats (every fact sheet).
    labels: Labels = field(default_factory=Labels)


Mode = Literal["json_schema", "json_object", "text"]


class LlmCall(BaseModel):
    """One request to the model and what came of it; one line of ``llm_calls.jsonl``."""

    run_id: str
    persona_id: str
    seq: int  # 1, 2, ... per persona, in the order the calls were made
    purpose: Literal["draft", "reask", "rename"]
    mode: Mode
    template_hash: str
    model: str
    request: dict[str, Any]  # messages, temperature, response_format as sent
    raw_response: str | None = None  # the HTTP body, as received
    parsed: dict[str, Any] | None = None  # the reply as a PersonaReply, when it parsed
    validation: dict[str, Any] | None = None
    status: Literal["ok", "invalid", "error"]
    error: str | None = None
    latency_ms: float
    usage: dict[str, Any] | None = None
    started_at: str


class Narrator(Protocol):
    calls: list[LlmCall]

    def narrate(self, personas: list[PersonaProfile], ctx: NarrationContext) -> list[Narrative]: ...


def sheet_for(
    persona: PersonaProfile, ctx: NarrationContext, min_cell: int, significance: float
) -> FactSheet:
    return build_fact_sheet(
        persona,
        n_users=ctx.n_users,
        outliers=ctx.outliers,
        feature_roles=ctx.feature_roles,
        min_cell=min_cell,
        significance=significance,
        labels=ctx.labels,
    )


def narrative_text(narrative: Narrative) -> str:
    """A narrative as plain text for people (hypotheses are labelled as such)."""
    lines = [narrative.name]
    if narrative.tagline:
        lines.append(narrative.tagline)
    lines += ["", narrative.summary]
    for title, items in (
        ("Goals", narrative.goals),
        ("Frustrations", narrative.frustrations),
        ("Hypotheses (not supported by a cited fact)", narrative.hypotheses),
    ):
        if items:
            lines += ["", f"{title}:"]
            lines += [
                f"- {i.text}" + (f" [{', '.join(i.facts)}]" if i.facts else "") for i in items
            ]
    if narrative.quote:
        lines += ["", f"\u201c{narrative.quote}\u201d"]
    source = narrative.source + (f" ({narrative.reason})" if narrative.reason else "")
    lines += ["", f"Source: {source}"]
    return "\n".join(lines) + "\n"
