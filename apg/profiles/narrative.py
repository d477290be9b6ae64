"""The narrative of one persona, whichever client drafted it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Item(BaseModel):
    """A goal or frustration with the fact ids (``F3``) that support it."""

    model_config = ConfigDict(extra="forbid")

    text: str
    facts: list[str] = Field(default_factory=list)


class Narrative(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    tagline: str = ""
    summary: str
    goals: list[Item]
    frustrations: list[Item]
    quote: str | None = None
    # Items the model offered without citing a fact: kept for reviewers, never shown as findings.
    hypotheses: list[Item] = Field(default_factory=list)
    source: Literal["llm", "offline", "offline-fallback"] = "offline"
    reason: str | None = None  # why an LLM narrative fell back to the offline text
    validation: dict[str, Any] | None = None
    template_hash: str | None = None
    model: str | None = None
    # The fact sheet the items cite: fact id -> fact text (aggregates only).
    facts: dict[str, str] = Field(default_factory=dict)
