"""The persona store: runs, personas, narrative versions and reviews in one SQL database.

SQLite by default (``apg.db`` in the working folder), PostgreSQL supported; the URL comes from
``--db``, ``APG_DATABASE_URL`` or config ``storage.url`` (:func:`resolve_url`). The schema is
migrated on open (``migrations``). Modules:

* ``engine``: URL, engine, SQLite WAL and busy timeout, read/write transactions;
* ``schema``: the tables; ``record``: writing a run; ``queries``: reading; ``store``: the
  :class:`Store` those make; ``reports``: a stored run's report;
* ``runner``: one pipeline run with identity matching, recorded in one transaction;
* ``locks``, ``runstate``, ``status``: the run lock and what is running;
* ``review``: review states and edits; ``export``; ``assign``: new users with a stored model.

Produces recorded runs and reviews. May import every stage, the pipeline and the report.
"""

from __future__ import annotations

from apg.store import schema as tables
from apg.store.engine import DEFAULT_URL, ENV_URL, now, resolve_url
from apg.store.store import Store, open_store

__all__ = ["DEFAULT_URL", "ENV_URL", "Store", "now", "open_store", "resolve_url", "tables"]
