"""The shared interface of every source kind.

A source kind is a pydantic spec (its config keys, ``extra="forbid"``) with a ``read`` method
that returns one pandas frame. Key renaming, column renaming and de-duplication are common to
all kinds and happen in :func:`finish`, so each backend only fetches rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from apg.errors import SourceError, listing
from apg.sources.masking import mask_secrets


@dataclass(frozen=True)
class SourceContext:
    """What a source needs to know about the run that reads it."""

    base_dir: Path
    id_column: str
    position: int = 0  # 1-based position in the config's sources list, for messages
    # The label of the source that wraps this one (an events source's `from:`), for messages.
    within: str | None = None


class SourceSpec(BaseModel):
    """Keys every source kind accepts."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    # The key column in this source when it is not named like the run's id_column.
    id: str | None = None
    rename: dict[str, str] = Field(default_factory=dict)
    dedupe: Literal["first", "last"] | None = None
    # How this source joins the sources before it (ignored for the first one).
    join: Literal["left", "inner"] = "left"

    def describe(self) -> str:
        """A short name for this source inside its label, e.g. ``sql`` or ``file users.csv``."""
        return self.kind

    def label(self, ctx: SourceContext) -> str:
        """How messages name this source: ``source #2 (sql)``."""
        if ctx.within:
            return f"{ctx.within} from ({self.describe()})"
        return f"source #{ctx.position} ({self.describe()})" if ctx.position else self.describe()

    def read(self, ctx: SourceContext) -> pd.DataFrame:  # pragma: no cover - abstract
        raise NotImplementedError

    def local_paths(self, ctx: SourceContext) -> list[Path]:
        """Files on this machine this source reads (an output folder must never hold them)."""
        return []

    def secret_values(self) -> list[str]:
        """Credentials in this spec (a URL password, an API key) to scrub from every message."""
        return []

    def error(self, ctx: SourceContext, message: str) -> SourceError:
        return SourceError(mask_secrets(f"{self.label(ctx)}: {message}", self.secret_values()))

    def finish(self, frame: pd.DataFrame, ctx: SourceContext) -> pd.DataFrame:
        """Apply renames, move the key to ``ctx.id_column`` and resolve duplicate ids."""
        if self.rename:
            missing = [c for c in self.rename if c not in frame.columns]
            if missing:
                raise self.error(
                    ctx,
                    f"rename: column(s) {listing(missing)} not found; columns are "
                    f"{listing(frame.columns)}",
                )
            frame = frame.rename(columns=self.rename)
        key = self.id or ctx.id_column
        if key not in frame.columns:
            raise self.error(
                ctx,
                f"id column {key!r} not found; columns are {listing(frame.columns)}. "
                "Set id_column (or this source's `id:`) to one of them",
            )
        if key != ctx.id_column:
            if ctx.id_column in frame.columns:
                raise self.error(
                    ctx,
                    f"has both {key!r} (its id) and {ctx.id_column!r}; rename one with `rename:`",
                )
            frame = frame.rename(columns={key: ctx.id_column})
        ids = frame[ctx.id_column]
        if ids.isna().any():
            rows = [int(i) for i in frame.index[ids.isna()][:5]]
            raise self.error(
                ctx,
                f"id column {key!r} is empty in {int(ids.isna().sum())} row(s) "
                f"(e.g. rows {rows}); every user needs an id",
            )
        dup = ids.duplicated(keep=False)
        if dup.any():
            if self.dedupe is None:
                examples = list(dict.fromkeys(ids[dup].astype(str)))
                raise self.error(
                    ctx,
                    f"{int(ids[dup].nunique())} duplicate id(s) in column {key!r}, e.g. "
                    f"{listing(examples, 5)}; remove them or set `dedupe: first|last`",
                )
            frame = frame.drop_duplicates(subset=[ctx.id_column], keep=self.dedupe)
        return frame.reset_index(drop=True)
