"""Narration: turn a persona profile into a name, summary, goals and frustrations.

``facts`` numbers what may be said, ``prompts`` renders it through ``prompts/*.j2``, ``llm`` asks
a model (``exchange`` speaks the protocol) and ``grounding`` checks every reply in code;
``offline`` writes deterministic text from the same facts. ``base`` holds the interface.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "LlmCall",
    "NarrationContext",
    "Narrative",
    "Narrator",
    "make_narrator",
    "narrative_text",
]


def __getattr__(name: str) -> Any:
    # Lazy: apg.profiles imports apg.narration.schema, and base imports apg.profiles.
    if name == "Narrative":
        from apg.narration.schema import Narrative

        return Narrative
    if name in __all__:
        from apg.narration import base

        return getattr(base, name)
    raise AttributeError(f"module 'apg.narration' has no attribute {name!r}")
