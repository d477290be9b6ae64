"""One error family for everything a user can fix.

Every message names the file, column, key or value at fault and says what to do. The CLI
prints ``error: <message>`` and exits 1 for any ``ApgError``; anything else is a bug and keeps
its traceback.
"""

from __future__ import annotations

from collections.abc import Iterable


class ApgError(Exception):
    """Base class: a problem with the user's input, config or environment."""


class ConfigError(ApgError):
    """The config file or command-line options are invalid."""


class DataError(ApgError):
    """The user table does not fit the configured roles (columns, types, ids, size)."""


class SourceError(ApgError):
    """A data source could not be read (file, database, HTTP API, event log)."""


class SearchError(ApgError):
    """The clustering search found no candidate that meets the selection rules."""


class NarrationError(ApgError):
    """Narration could not run (bad template, bad client settings)."""


class StoreError(ApgError):
    """The database could not be opened, migrated or queried as asked."""


class NotFoundError(StoreError):
    """A run or persona id does not exist."""


def listing(names: Iterable[object], limit: int = 12) -> str:
    """Render names for a message: ``'a', 'b', 'c' (+4 more)``."""
    items = [repr(str(n)) for n in names]
    shown = ", ".join(items[:limit])
    if len(items) > limit:
        shown += f" (+{len(items) - limit} more)"
    return shown or "(none)"
