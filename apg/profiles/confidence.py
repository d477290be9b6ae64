"""How far each persona can be trusted: its size, its own silhouette and its stability.

* ``silhouette``: the mean silhouette of the persona's members (DBSCAN noise left out), on a
  seeded sample of at most ``SAMPLE_ROWS`` users (all of them in smaller tables): how much
  closer its members are to each other than to the next persona.
* ``stability``: Hennig's clusterwise stability of its cluster (``apg.search.stability``): the
  mean Jaccard similarity with its best match when the winner is refitted on subsamples.

The level, in this order:

* ``low``: stability < 0.5 (the persona dissolves on other samples), silhouette < 0.1 (its
  members are as close to another persona), or fewer than ``MIN_USERS`` users;
* ``high``: stability >= 0.75 and silhouette >= 0.25;
* ``medium``: the rest, and any persona whose stability was not measured.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, Field
from sklearn import config_context
from sklearn.metrics import silhouette_samples

from apg.prepare.matrix import Matrix

SAMPLE_ROWS = 5000
MIN_USERS = 30
STABLE, DISSOLVED = 0.75, 0.5
SEPARATED, MIXED = 0.25, 0.1


class Confidence(BaseModel):
    level: Literal["high", "medium", "low"]
    size: int
    silhouette: float | None = None
    stability: float | None = None
    reasons: list[str] = Field(default_factory=list)


def level_of(size: int, silhouette: float | None, stability: float | None) -> Confidence:
    reasons = []
    if stability is not None and stability < DISSOLVED:
        reasons.append(f"stability {stability:.2f} < {DISSOLVED}: it dissolves on other samples")
    if silhouette is not None and silhouette < MIXED:
        reasons.append(f"silhouette {silhouette:.2f} < {MIXED}: its members are as close to others")
    if size < MIN_USERS:
        reasons.append(f"{size} users < {MIN_USERS}")
    if reasons:
        level: Literal["high", "medium", "low"] = "low"
    elif (
        stability is not None
        and stability >= STABLE
        and silhouette is not None
        and silhouette >= SEPARATED
    ):
        level = "high"
    else:
        level = "medium"
    return Confidence(
        level=level, size=size, silhouette=silhouette, stability=stability, reasons=reasons
    )


def persona_silhouettes(matrix: Matrix, labels: np.ndarray, rows: np.ndarray) -> dict[int, float]:
    """Each cluster's mean member silhouette over the sorted sample ``rows``."""
    sampled = labels[rows]
    keep = sampled >= 0
    if len(np.unique(sampled[keep])) < 2:
        return {}
    # Distances a block of rows at a time: at its default (1 GiB) scikit-learn would hold
    # the sample's whole 5,000 x 5,000 distance matrix at once.
    with config_context(working_memory=32):
        values = silhouette_samples(matrix.rows(rows)[keep], sampled[keep])
    return {int(c): float(values[sampled[keep] == c].mean()) for c in np.unique(sampled[keep])}


def confidence_text(c: Confidence) -> str:
    """``confidence high: stability 0.97, silhouette 0.41``, with the reasons when low."""
    parts = []
    if c.stability is not None:
        parts.append(f"stability {c.stability:.2f}")
    if c.silhouette is not None:
        parts.append(f"silhouette {c.silhouette:.2f}")
    text = f"confidence {c.level}" + (f": {', '.join(parts)}" if parts else "")
    return text + (f" ({'; '.join(c.reasons)})" if c.reasons else "")
