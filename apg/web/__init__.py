"""``apg serve``: review pages for the persona store (see ``docs/web.md``)."""

from __future__ import annotations

from apg.web.app import create_app

__all__ = ["create_app"]
