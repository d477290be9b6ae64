"""``apg serve``: review pages for the persona store (see ``docs/web.md``).

Produces HTTP responses. May import everything below it (stages, report, store); thin: review
actions go through ``apg.store.review``, the same code path as the CLI.
"""

from __future__ import annotations

from apg.web.app import create_app

__all__ = ["create_app"]
