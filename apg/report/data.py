"""What report.html needs from a run, as plain data: :class:`ReportData` is built from a
finished run (:func:`report_data_from_result`) or from the store (``apg.store.reports``), and
``apg.report.html`` renders it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from apg.narration.display import Labels
from apg.narration.facts import build_fact_sheet
from apg.profiles.persona import OutlierProfile, PersonaProfile
from apg.search.candidates import Candidate
from apg.search.leaderboard import MAP_SAMPLE, sample_rows
from apg.search.selection import rank_key
from apg.version import __version__

if TYPE_CHECKING:
    from apg.pipeline import RunResult


@dataclass
class CandidateRow:
    """One leaderboard row: a candidate without its labels."""

    algorithm: str
    params: dict[str, Any]
    n_clusters: int
    silhouette: float
    davies_bouldin: float
    calinski_harabasz: float
    noise_share: float
    min_cluster_share: float
    eligible: bool
    reason: str
    selected: bool
    rank: int = 0  # 1 = best silhouette (ties as in apg.search.leaderboard.rank_key)
    stability: float | None = None  # None: not refitted (apg.search.stability)

    @property
    def key(self) -> str:
        inner = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.algorithm}({inner})"

    @classmethod
    def from_candidate(cls, c: Candidate, rank: int = 0) -> CandidateRow:
        return cls(
            c.algorithm,
            dict(c.params),
            c.n_clusters,
            c.silhouette,
            c.davies_bouldin,
            c.calinski_harabasz,
            c.noise_share,
            c.min_cluster_share,
            c.eligible,
            c.reason,
            c.selected,
            rank,
            c.stability,
        )


@dataclass
class ReportData:
    """Everything the page shows, as plain values (storable, and rebuildable from storage)."""

    run_id: str
    created_at: str
    personas: list[PersonaProfile]
    outliers: OutlierProfile
    candidates: list[CandidateRow]
    wcss: dict[int, float] = field(default_factory=dict)
    elbow_k: int | None = None
    n_users: int = 0  # rows clustered
    rows_read: int = 0
    features: dict[str, list[str]] = field(default_factory=dict)  # role -> columns
    # persona id -> fact id -> fact text (the sheet the narrative cites)
    facts: dict[str, dict[str, str]] = field(default_factory=dict)
    # A seeded sample (<= MAP_SAMPLE rows) of the clustered matrix and its labels (-1 noise).
    sample_X: np.ndarray | None = field(default=None, repr=False)
    sample_labels: np.ndarray | None = field(default=None, repr=False)
    tree_linkage: str = "ward"  # linkage of the dendrogram: the winner's, else ward
    seed: int = 0
    min_cell: int = 5  # demographic categories smaller than this are merged into "other"
    significance: float = 0.05  # narration.significance: the level of "over-represented"
    version: str = __version__
    weak: list[str] = field(default_factory=list)  # why the structure is weak; empty: it is not
    # The config's labels: display names, value labels, number formats (docs/labels.md).
    labels: Labels = field(default_factory=Labels)

    @property
    def winner(self) -> CandidateRow | None:
        return next((c for c in self.candidates if c.selected), None)


def report_data_from_result(result: RunResult) -> ReportData:
    """Everything the page needs from a finished run, with a seeded sample of its matrix."""
    search, frame, config = result.search, result.frame, result.config
    ranked = sorted(range(len(search.candidates)), key=lambda i: rank_key(search.candidates[i], i))
    position = {i: pos for pos, i in enumerate(ranked, start=1)}
    rows = [CandidateRow.from_candidate(c, position[i]) for i, c in enumerate(search.candidates)]
    n_users = len(result.labels)
    roles: dict[str, str] = {c: frame.role_of(c) for c in frame.features}
    min_cell = config.narration.min_cell
    outliers = result.outliers if result.outliers.size else None
    labels = Labels.from_config(config.labels)
    facts = {
        p.persona_id: build_fact_sheet(
            p,
            n_users=n_users,
            outliers=outliers,
            feature_roles=roles,
            min_cell=min_cell,
            significance=config.narration.significance,
            labels=labels,
        ).as_dict()
        for p in result.personas
    }
    idx = sample_rows(n_users, MAP_SAMPLE, config.search.seed)
    winner = search.winner
    linkage = (
        str(winner.params.get("linkage", "ward")) if winner.algorithm == "agglomerative" else "ward"
    )
    return ReportData(
        run_id=result.run_id,
        created_at=result.created_at,
        personas=result.personas,
        outliers=result.outliers,
        candidates=rows,
        wcss=dict(search.wcss),
        elbow_k=search.elbow_k,
        n_users=n_users,
        rows_read=len(result.table.frame),
        features={
            "behavioral": list(frame.behavioral),
            "attitudinal": list(frame.attitudinal),
            "demographic": list(frame.demographic),
        },
        facts=facts,
        sample_X=np.asarray(result.matrix_rows(idx)),
        sample_labels=np.asarray(result.labels[idx]),
        tree_linkage=linkage,
        seed=config.search.seed,
        weak=list(search.weak),
        min_cell=min_cell,
        significance=config.narration.significance,
        labels=labels,
    )


# --- view models -------------------------------------------------------------------------
