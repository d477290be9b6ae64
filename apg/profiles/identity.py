"""Identity across runs: match this run's clusters to the previous run's personas.

Matching (see docs/storage.md):

* **members** when user ids persist (at least ``MIN_SHARED_IDS`` of the smaller run's users
  are in both runs): similarity is the Jaccard overlap of member ids; pairs need
  ``continuity.min_jaccard``.
* **centroid** otherwise: distance is the root mean square over features of the centroid
  shift, numeric features in the previous run's population standard deviations, categorical
  features as the total-variation distance of their category shares; pairs need at most
  ``continuity.max_centroid_distance``.

Either way the pairs are an optimal one-to-one assignment (Hungarian,
``scipy.optimize.linear_sum_assignment``). A matched cluster keeps the persona id; its drift
score is the larger of the centroid shift and ``1 - Jaccard`` (ids persisting), and above
``continuity.drift_threshold`` the persona is ``changed``, else ``continuing``. Unmatched
clusters are ``new`` with a fresh id; unmatched old personas are ``retired``.

:class:`Continuity` is the hook ``apg.pipeline.run`` calls between profiling and narration;
it decides which personas are narrated (``new`` and ``changed`` ones, and any without a
narrative) and carries the current narrative over to the rest.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from itertools import count
from typing import Any, Literal

import numpy as np
from scipy.optimize import linear_sum_assignment

from apg.config import ContinuityConfig
from apg.prepare.features import FeatureFrame
from apg.prepare.preprocessing import Prepared
from apg.profiles.narrative import Narrative
from apg.profiles.persona import PersonaProfile

# Share of the smaller run's users that must appear in both runs to match on member ids.
MIN_SHARED_IDS = 0.5

Status = Literal["new", "continuing", "changed", "retired"]


@dataclass
class PreviousPersona:
    persona_id: str
    cluster: int
    size: int
    share: float
    centroid: dict[str, float | None]
    categories: dict[str, dict[str, float]] = field(default_factory=dict)
    narrative: Narrative | None = None  # its current narrative (approved, else latest draft)
    approved: bool = False  # whether that narrative is an approved version


@dataclass
class PreviousRun:
    run_id: str
    user_ids: np.ndarray  # str, every clustered user of that run
    clusters: np.ndarray  # int, aligned with user_ids; -1 is noise
    feature_stats: dict[str, tuple[float, float]]  # numeric feature -> (mean, std)
    personas: list[PreviousPersona]


@dataclass
class Drift:
    size_change: int
    share_change: float
    feature_shift: dict[str, float]  # numeric: signed, in std units; categorical: TV distance
    centroid_shift: float  # RMS of feature_shift
    member_overlap: float | None  # Jaccard of member ids (members matching only)
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "size_change": self.size_change,
            "share_change": self.share_change,
            "feature_shift": self.feature_shift,
            "centroid_shift": self.centroid_shift,
            "member_overlap": self.member_overlap,
            "score": self.score,
        }


@dataclass
class Outcome:
    persona_id: str
    status: Status
    cluster: int | None  # None for a retired persona
    size: int
    share: float
    matched_by: Literal["members", "centroid"] | None = None
    similarity: float | None = None  # Jaccard or centroid distance
    drift: Drift | None = None
    narrated: bool = False  # sent to the narrator in this run


@dataclass
class Plan:
    previous_run_id: str | None
    method: Literal["members", "centroid"] | None
    shared_ids: float | None
    outcomes: list[Outcome]  # this run's personas in order, then the retired ones
    drafts: dict[str, Narrative] = field(default_factory=dict)  # new draft versions to store
    feature_stats: dict[str, tuple[float, float]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in ("new", "continuing", "changed", "retired")}
        for o in self.outcomes:
            out[o.status] += 1
        return out


def feature_stats(frame: FeatureFrame) -> dict[str, tuple[float, float]]:
    """Population mean and standard deviation (ddof=1) of each numeric clustering feature."""
    out = {}
    for col in frame.numeric_features:
        values = frame.raw[col].astype("float64")
        mean, std = values.mean(), values.std(ddof=1)
        out[col] = (
            float(mean) if not math.isnan(mean) else 0.0,
            float(std) if not math.isnan(std) else 0.0,
        )
    return out


def _feature_shift(
    old: PreviousPersona,
    new: PersonaProfile,
    stats: dict[str, tuple[float, float]],
    fallback: dict[str, tuple[float, float]],
) -> dict[str, float]:
    shift: dict[str, float] = {}
    for col, was in old.centroid.items():
        now = new.centroid.get(col)
        if was is None or now is None:
            continue
        std = stats.get(col, (0.0, 0.0))[1] or fallback.get(col, (0.0, 0.0))[1]
        if std > 0:
            shift[col] = (now - was) / std
    for col, was_shares in old.categories.items():
        now_shares = new.categories.get(col)
        if now_shares is None:
            continue
        cats = set(was_shares) | set(now_shares)
        shift[col] = 0.5 * sum(abs(now_shares.get(c, 0.0) - was_shares.get(c, 0.0)) for c in cats)
    return shift


def _rms(values: dict[str, float]) -> float:
    return math.sqrt(sum(v * v for v in values.values()) / len(values)) if values else math.inf


def _position(values: np.ndarray, clusters: list[int]) -> np.ndarray:
    """The index of each value in ``clusters``, or -1."""
    order = np.asarray(clusters, dtype=np.int64)
    if not len(order):
        return np.full(len(values), -1, dtype=np.intp)
    sorter = np.argsort(order)
    pos = np.clip(np.searchsorted(order, values, sorter=sorter), 0, len(order) - 1)
    found = sorter[pos]
    return np.where(order[found] == values, found, -1).astype(np.intp)


def _jaccard(
    previous: PreviousRun,
    ids: np.ndarray,
    labels: np.ndarray,
    old_clusters: list[int],
    new_clusters: list[int],
) -> tuple[float, np.ndarray]:
    """Share of shared ids and the Jaccard matrix (old x new) of member sets."""
    _, i_old, i_new = np.intersect1d(
        previous.user_ids, ids, assume_unique=True, return_indices=True
    )
    smaller = min(len(previous.user_ids), len(ids))
    shared = len(i_old) / smaller if smaller else 0.0
    # Row/column index of each shared user's old/new cluster (-1: noise or not a persona).
    a = _position(previous.clusters[i_old], old_clusters)
    b = _position(labels[i_new], new_clusters)
    keep = (a >= 0) & (b >= 0)
    inter = np.zeros((len(old_clusters), len(new_clusters)))
    np.add.at(inter, (a[keep], b[keep]), 1.0)
    old_sizes = np.array([np.sum(previous.clusters == c) for c in old_clusters], dtype=float)
    new_sizes = np.array([np.sum(labels == c) for c in new_clusters], dtype=float)
    union = old_sizes[:, None] + new_sizes[None, :] - inter
    return shared, np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def new_persona_id(key: str, taken: set[str]) -> str:
    """``P-`` and 4 hex digits of a hash of ``key``, unique among ``taken`` (which it joins).

    The key is the cluster's sorted member ids, so the same data gives the same ids in a
    fresh database, on any machine.
    """
    for salt in count():
        digest = hashlib.sha256(f"{key}:{salt}".encode()).hexdigest()
        pid = f"P-{digest[: 4 if salt < 64 else 8]}"
        if pid not in taken:
            taken.add(pid)
            return pid
    raise AssertionError("unreachable")  # pragma: no cover


def _member_key(ids: np.ndarray, labels: np.ndarray, cluster: int) -> str:
    members = np.sort(ids[labels == cluster])
    return hashlib.sha256("\n".join(members.tolist()).encode()).hexdigest()


def _centroid_fallback(
    pairs: dict[int, int], finite: np.ndarray, dist: np.ndarray, config: ContinuityConfig
) -> set[int]:
    """Match what member overlap left unmatched by centroid distance, adding to ``pairs``.

    Ids can persist while their users move between segments wholesale (a re-keyed export, a
    re-sampled panel): a segment that stayed where it was is still the same persona, only
    with a changed membership, which its drift (1 - overlap) then reports.
    """
    free_new = [j for j in range(dist.shape[1]) if j not in pairs]
    taken_old = set(pairs.values())
    free_old = [i for i in range(dist.shape[0]) if i not in taken_old]
    if not free_new or not free_old:
        return set()
    rows, cols = linear_sum_assignment(finite[np.ix_(free_old, free_new)])
    added = set()
    for r, c in zip(rows, cols, strict=True):
        i, j = free_old[int(r)], free_new[int(c)]
        if dist[i, j] <= config.max_centroid_distance:
            pairs[j] = i
            added.add(j)
    return added


def match(
    previous: PreviousRun | None,
    personas: list[PersonaProfile],
    ids: np.ndarray,
    labels: np.ndarray,
    stats: dict[str, tuple[float, float]],
    config: ContinuityConfig,
    taken: set[str],
) -> Plan:
    """Decide each persona's id and status; ``personas`` are left unchanged.

    ``ids`` and ``labels`` are this run's clustered users and their clusters; ``taken`` holds
    the persona ids in use (new ids are added to it).
    """
    ids = np.asarray(ids).astype(str)
    labels = np.asarray(labels)

    def fresh(p: PersonaProfile) -> Outcome:
        return Outcome(
            new_persona_id(_member_key(ids, labels, p.cluster), taken),
            "new",
            p.cluster,
            p.size,
            p.share,
        )

    if previous is None or not previous.personas:
        outcomes = [fresh(p) for p in personas]
        return Plan(
            previous.run_id if previous else None, None, None, outcomes, feature_stats=stats
        )
    old = previous.personas
    shared, jac = _jaccard(
        previous, ids, labels, [o.cluster for o in old], [p.cluster for p in personas]
    )
    shifts = [[_feature_shift(o, p, previous.feature_stats, stats) for p in personas] for o in old]
    dist = np.array([[_rms(s) for s in row] for row in shifts]).reshape(len(old), len(personas))
    finite = np.where(np.isfinite(dist), np.minimum(dist, 1e3), 1e3)
    by_members = shared >= MIN_SHARED_IDS
    if by_members:
        # Centroid distance only breaks ties between equal overlaps.
        cost = (1.0 - jac) + 1e-9 * finite
        ok = jac >= config.min_jaccard
    else:
        cost = finite
        ok = dist <= config.max_centroid_distance
    rows, cols = linear_sum_assignment(cost)
    pairs = {int(c): int(r) for r, c in zip(rows, cols, strict=True) if ok[r, c]}
    by_centroid = _centroid_fallback(pairs, finite, dist, config) if by_members else set()
    outcomes = []
    for j, p in enumerate(personas):
        if j not in pairs:
            outcomes.append(fresh(p))
            continue
        i = pairs[j]
        o = old[i]
        via_members = by_members and j not in by_centroid
        overlap = float(jac[i, j]) if by_members else None
        centroid_shift = float(dist[i, j]) if math.isfinite(dist[i, j]) else 0.0
        score = max(centroid_shift, 1.0 - overlap if overlap is not None else 0.0)
        drift = Drift(
            size_change=p.size - o.size,
            share_change=p.share - o.share,
            feature_shift={k: float(v) for k, v in shifts[i][j].items()},
            centroid_shift=centroid_shift,
            member_overlap=overlap,
            score=score,
        )
        outcomes.append(
            Outcome(
                o.persona_id,
                "changed" if score > config.drift_threshold else "continuing",
                p.cluster,
                p.size,
                p.share,
                matched_by="members" if via_members else "centroid",
                similarity=overlap if via_members else centroid_shift,
                drift=drift,
            )
        )
    matched_old = set(pairs.values())
    outcomes += [
        Outcome(o.persona_id, "retired", None, 0, 0.0)
        for i, o in enumerate(old)
        if i not in matched_old
    ]
    return Plan(
        previous.run_id,
        "members" if by_members else "centroid",
        shared,
        outcomes,
        feature_stats=stats,
    )


class Continuity:
    """The ``continuity`` hook of :func:`apg.pipeline.run`.

    ``before_narration`` renames the run's personas to their stable ids, carries narratives
    over and returns the personas to narrate; ``after_narration`` keeps the new drafts in
    :attr:`plan` and, for a ``changed`` persona with approved text, puts that text back as its
    current narrative (the new draft waits for review).
    """

    def __init__(
        self, previous: PreviousRun | None, config: ContinuityConfig, taken_ids: set[str]
    ) -> None:
        self.previous = previous
        self.config = config
        self.taken = set(taken_ids)
        self.plan: Plan | None = None
        self._approved: dict[str, Narrative] = {}

    def before_narration(
        self, run_id: str, prepared: Prepared, personas: list[PersonaProfile], labels: np.ndarray
    ) -> list[PersonaProfile]:
        stats = feature_stats(prepared.frame)
        ids = prepared.frame.ids.astype(str).to_numpy()
        self.plan = match(self.previous, personas, ids, labels, stats, self.config, self.taken)
        old = {o.persona_id: o for o in (self.previous.personas if self.previous else [])}
        to_narrate = []
        for persona, outcome in zip(personas, self.plan.outcomes[: len(personas)], strict=True):
            persona.persona_id = outcome.persona_id
            was = old.get(outcome.persona_id)
            carried = was.narrative if was is not None else None
            if outcome.status == "continuing" and carried is not None:
                persona.narrative = carried.model_copy(deep=True)
                continue
            if outcome.status == "changed" and carried is not None and was and was.approved:
                self._approved[outcome.persona_id] = carried
            outcome.narrated = True
            to_narrate.append(persona)
        return to_narrate

    def after_narration(self, personas: list[PersonaProfile]) -> None:
        assert self.plan is not None, "before_narration was not called"
        narrated = {o.persona_id for o in self.plan.outcomes if o.narrated}
        for persona in personas:
            if persona.persona_id not in narrated or persona.narrative is None:
                continue
            self.plan.drafts[persona.persona_id] = persona.narrative
            approved = self._approved.get(persona.persona_id)
            if approved is not None:
                persona.narrative = approved.model_copy(deep=True)
