"""Data sources: each kind reads one table; :func:`load_sources` joins them per user.

Kinds: ``file`` (CSV/TSV/Parquet/JSON lines, globs), ``sql`` (SQLAlchemy URL, query or table),
``http`` (JSON API with pagination and retries) and ``events`` (an event log read through one
of the others, aggregated per user). Each lives in its own module with the shared interface
of :class:`apg.sources.base.SourceSpec`. ``sample`` generates a seeded synthetic user table.

Produces a :class:`~apg.sources.combine.SourceTable`. May import: errors (it is the first stage;
the config imports it for the source specs).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from apg.sources.base import SourceContext
from apg.sources.check import check_sources, describe_table
from apg.sources.combine import SourceTable, load_sources
from apg.sources.events import EventsSource
from apg.sources.file import FileSource
from apg.sources.fingerprint import fingerprint
from apg.sources.http import HttpSource, Pagination
from apg.sources.masking import mask_headers, mask_secrets, mask_tree, mask_url
from apg.sources.sql import SqlSource

# Each kind registers here; pydantic picks the model from the `kind` key.
SourceSpec = Annotated[
    FileSource | SqlSource | HttpSource | EventsSource, Field(discriminator="kind")
]
# Used by apg.config to drop pydantic's union tags from error paths.
SOURCE_KINDS = ("file", "sql", "http", "events")

__all__ = [
    "SOURCE_KINDS",
    "EventsSource",
    "FileSource",
    "HttpSource",
    "Pagination",
    "SourceContext",
    "SourceSpec",
    "SourceTable",
    "SqlSource",
    "check_sources",
    "describe_table",
    "fingerprint",
    "load_sources",
    "mask_headers",
    "mask_secrets",
    "mask_tree",
    "mask_url",
]
