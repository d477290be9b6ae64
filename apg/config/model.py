"""The run config: sources, roles, preparation, narration, storage and continuity, and the
sections of :mod:`apg.config.search`, :mod:`apg.config.service` and :mod:`apg.config.labels`."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from apg.config.base import Strict
from apg.config.labels import ColumnLabelConfig
from apg.config.search import SearchConfig
from apg.config.service import NotifyTarget, ScheduleConfig, ServeConfig
from apg.sources import SourceSpec


class FeaturesConfig(Strict):
    behavioral: list[str] = Field(default_factory=list)
    attitudinal: list[str] = Field(default_factory=list)
    demographic: list[str] = Field(default_factory=list)
    # Results such as churn or campaign response: never clustered, reported per persona.
    outcome: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _roles_are_disjoint(self) -> FeaturesConfig:
        if not self.behavioral and not self.attitudinal:
            raise ValueError("at least one behavioral or attitudinal column is needed to cluster")
        seen: dict[str, str] = {}
        for role in ("behavioral", "attitudinal", "demographic", "outcome"):
            for col in getattr(self, role):
                if col in seen:
                    where = "twice" if seen[col] == role else f"both {seen[col]} and {role}"
                    raise ValueError(f"column {col!r} is given {where}; give each column one role")
                seen[col] = role
        return self

    @property
    def clustering(self) -> list[str]:
        return [*self.behavioral, *self.attitudinal]


class PreprocessingConfig(Strict):
    missing: Literal["impute_median", "impute_mean", "drop_rows"] = "impute_median"
    categorical: Literal["onehot"] = "onehot"
    scaling: Literal["standard", "minmax", "robust"] = "standard"
    pca: int | float | None = None
    # What to do with a clustering column that is entirely missing or constant.
    degenerate_columns: Literal["error", "drop"] = "error"
    # Pull in heavy tails before scaling (apg.prepare.transforms): `auto` transforms a numeric
    # clustering column whose |skewness| reaches skew_threshold; `transforms` names a kind per
    # column and wins over the rule.
    transform: Literal["auto", "none"] = "auto"
    transforms: dict[str, Literal["log1p", "yeo-johnson", "winsorize", "none"]] = Field(
        default_factory=dict
    )
    skew_threshold: float = Field(1.0, gt=0)
    winsorize: tuple[float, float] = (0.01, 0.99)
    # A clustering date (typed, or text that reads as dates) becomes days before this date;
    # null: per column, the newest date in it (apg.prepare.dates). date_formats names the
    # strptime format of a column's dates, overriding detection (e.g. "%m/%d/%Y").
    reference_date: date | None = None
    date_formats: dict[str, str] = Field(default_factory=dict)
    # A text clustering column with more distinct values is an error: one-hot would add a
    # sparse column per value (dates, ids and free text end up here).
    max_categories: int = Field(30, ge=2)
    # After encoding, a clustering column whose |Pearson r| with an earlier one reaches this
    # is dropped from the matrix (one fact, counted once); null keeps every column.
    redundancy_threshold: float | None = Field(0.98, gt=0, le=1)

    @field_validator("winsorize")
    @classmethod
    def _quantiles(cls, v: tuple[float, float]) -> tuple[float, float]:
        lo, hi = v
        if not 0 <= lo < hi <= 1:
            raise ValueError(f"winsorize quantiles [{lo}, {hi}] must satisfy 0 <= low < high <= 1")
        return v

    @field_validator("date_formats")
    @classmethod
    def _date_formats(cls, v: dict[str, str]) -> dict[str, str]:
        probe = datetime(2001, 2, 3, 4, 5, 6)
        for col, fmt in v.items():
            try:
                ok = "%" in fmt and datetime.strptime(probe.strftime(fmt), fmt).year == 2001
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(
                    f"date_formats: {fmt!r} for column {col!r} is not a strptime format with "
                    "a year, e.g. '%d-%m-%Y'"
                )
        return v

    @field_validator("pca", mode="before")
    @classmethod
    def _pca_valid(cls, v: Any) -> int | float | None:
        if v is None:
            return v
        if isinstance(v, bool):
            raise ValueError("pca must be null, an integer >= 1 or a variance share in (0, 1)")
        if isinstance(v, int) and v < 1:
            raise ValueError(f"pca={v} components must be >= 1")
        if isinstance(v, float) and not 0 < v < 1:
            raise ValueError(f"pca={v} as a variance share must be between 0 and 1 (exclusive)")
        return v


class NarrationConfig(Strict):
    client: Literal["offline", "openai"] = "offline"
    model: str = "gpt-4o-mini"
    temperature: float = Field(0.2, ge=0, le=2)
    timeout: float = Field(60.0, gt=0)  # one request, at most
    max_retries: int = Field(2, ge=0)
    max_reasks: int = Field(2, ge=0)
    # Sent as max_tokens on every request. A complete reply with 5 goals and 5 frustrations,
    # pretty-printed, is ~750 tokens (cl100k; ~170-220 for a typical one); 1024 leaves room
    # for tokenizers that count ~30% more, and stops a model looping in JSON mode there.
    max_tokens: int = Field(1024, ge=64)
    # Seconds of requests, retries and re-asks per persona; what is left is the timeout of the
    # next request, and then the persona gets the offline text. As long as one request may
    # take (timeout): one slow reply may use it all, but retries and re-asks cannot multiply
    # it. Worst case for the stage: ceil(personas / concurrency) x persona_budget.
    persona_budget: float = Field(60.0, gt=0)
    # auto: the slots a llama.cpp server reports (GET /props), else 1 for a loopback, private
    # or single-label host (one local server answers one request at a time; more only queue
    # and time out), else 4 for a hosted API.
    concurrency: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    min_cell: int = Field(5, ge=1)
    # Level of the Benjamini-Hochberg-corrected test a category needs before a persona's
    # fact sheet calls it over-represented (apg.profiles.significance).
    significance: float = Field(0.05, gt=0, lt=1)
    prompts_dir: str | None = None


class StorageConfig(Strict):
    # SQLAlchemy URL; precedence: --db, then APG_DATABASE_URL, then this, then sqlite:///apg.db.
    url: str | None = None


class ContinuityConfig(Strict):
    """How a run's clusters are matched to the previous run's personas."""

    # Minimum member overlap (Jaccard on user ids) for a match when ids persist.
    min_jaccard: float = Field(0.3, gt=0, le=1)
    # Maximum centroid distance (standardized units, RMS per feature) when ids do not persist.
    max_centroid_distance: float = Field(1.0, gt=0)
    # A matched persona whose drift exceeds this is `changed` (else `continuing`).
    drift_threshold: float = Field(0.25, gt=0)


class Config(Strict):
    sources: list[SourceSpec] = Field(min_length=1)
    id_column: str
    features: FeaturesConfig
    preprocessing: PreprocessingConfig = Field(default_factory=PreprocessingConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    narration: NarrationConfig = Field(default_factory=NarrationConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    continuity: ContinuityConfig = Field(default_factory=ContinuityConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    # Display names, units, value labels and number formats per column (docs/labels.md).
    labels: dict[str, ColumnLabelConfig] = Field(default_factory=dict)
    # Excluded from model_dump: they change no result (run ids, content ids and the
    # unchanged test stay as they were) and header values are secrets never to be stored.
    serve: ServeConfig = Field(default_factory=ServeConfig, exclude=True)
    notify: list[NotifyTarget] = Field(default_factory=list, exclude=True)

    # The folder relative source paths resolve against (the config file's folder).
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)

    @model_validator(mode="after")
    def _id_is_not_a_feature(self) -> Config:
        roles = {
            "behavioral": self.features.behavioral,
            "attitudinal": self.features.attitudinal,
            "demographic": self.features.demographic,
            "outcome": self.features.outcome,
        }
        for role, cols in roles.items():
            if self.id_column in cols:
                raise ValueError(
                    f"id column {self.id_column!r} is also listed as {role}; "
                    "the id is never a feature"
                )
        return self

    @model_validator(mode="after")
    def _labels_name_features(self) -> Config:
        f = self.features
        columns = [*f.behavioral, *f.attitudinal, *f.demographic, *f.outcome]
        for col in self.labels:
            if col not in columns:
                raise ValueError(
                    f"labels: {col!r} is not a feature of this config; label one of "
                    f"{', '.join(columns)} (names are case-sensitive), or list {col!r} "
                    "under features"
                )
        return self
