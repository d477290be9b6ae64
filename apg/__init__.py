"""apg: automatic persona generation from user data."""

from __future__ import annotations

from apg.version import __version__

__all__ = ["__version__"]
