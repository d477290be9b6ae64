"""The narrative of one persona, whichever client drafted it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Text limits shared by every path a narrative takes: the LLM's reply (checked by grounding),
# `apg review edit`, the web form and a YAML edit file. A persona name is a label on a card,
# not a paragraph; the rest bounds what the store and the pages hold.
MAX_NAME_CHARS = 60
MAX_TAGLINE, MAX_SUMMARY, MAX_ITEM, MAX_QUOTE = 200, 2000, 400, 400
MAX_EDIT_ITEMS = 10  # goals or frustrations a reviewer may list


def text_problems(narrative: Narrative) -> list[str]:
    """Where ``narrative`` exceeds the shared text limits, one message each."""
    problems = []
    for field, text, limit in (
        ("name", narrative.name, MAX_NAME_CHARS),
        ("tagline", narrative.tagline, MAX_TAGLINE),
        ("summary", narrative.summary, MAX_SUMMARY),
        ("quote", narrative.quote or "", MAX_QUOTE),
    ):
        if len(text) > limit:
            problems.append(f"{field} is {len(text):,} characters; at most {limit:,}")
    if not narrative.name.strip():
        problems.append("name is empty")
    for field in ("goals", "frustrations"):
        items = getattr(narrative, field)
        if len(items) > MAX_EDIT_ITEMS:
            problems.append(f"{field}: {len(items)} items; at most {MAX_EDIT_ITEMS}")
        for i, item in enumerate(items, 1):
            if len(item.text) > MAX_ITEM:
                problems.append(
                    f"{field} #{i} is {len(item.text):,} characters; at most {MAX_ITEM:,}"
                )
    return problems


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
