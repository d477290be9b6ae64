"""Narration: turn a persona profile into a name, summary, goals and frustrations.

``facts`` numbers what may be said, ``prompts`` renders it through ``prompts/*.j2``, ``llm`` asks
a model (``exchange`` speaks the protocol) and ``grounding`` checks every reply in code;
``offline`` writes deterministic text from the same facts. ``base`` holds the interface.

Produces a :class:`~apg.profiles.narrative.Narrative` per persona. May import: errors, sources,
config, prepare, search, profiles.
"""

from __future__ import annotations

from collections.abc import Callable

from apg.config import NarrationConfig
from apg.narration.base import LlmCall, NarrationContext, Narrator, narrative_text
from apg.profiles.narrative import Narrative

__all__ = [
    "LlmCall",
    "NarrationContext",
    "Narrative",
    "Narrator",
    "make_narrator",
    "narrative_text",
]


def make_narrator(
    config: NarrationConfig, *, progress: Callable[[str], None] | None = None
) -> Narrator:
    """The narrator ``config.client`` names; raises ``NarrationError`` for a setting to fix."""
    if config.client == "openai":
        # Imported only when used: the openai SDK is slow to import.
        from apg.narration.llm import OpenAINarrator

        return OpenAINarrator(config, progress=progress)
    from apg.narration.offline import OfflineNarrator

    return OfflineNarrator(config, progress=progress)
