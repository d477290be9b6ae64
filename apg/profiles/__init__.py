"""Profiles: per-persona facts in the data's own units (``persona``, with ``centres`` for the
distances), the narrative slot a persona carries (``narrative``), and identity across runs
(``identity``: matching last week's personas, drift).

Produces :class:`~apg.profiles.persona.PersonaProfile` lists. May import: errors, sources,
config, prepare, search.
"""
