"""The run configuration: pydantic models for ``configs/*.yaml``.

Unknown keys are errors (``extra="forbid"``) so a typo never silently falls back to a default.
Defaults are the values documented in the README; nothing that is not configured is applied.
"""

from __future__ import annotations

import os
import re
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from apg.errors import ConfigError
from apg.sources import SOURCE_KINDS, SourceSpec
from apg.sources.masking import mask_secrets


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _k_range(value: Any) -> list[int]:
    """``[2, 10]`` is an inclusive range; ``4`` or ``[4]`` is one value; three or more
    integers are the values themselves (which is also how a validated config dumps)."""

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if is_int(value):
        value = [value]
    if not isinstance(value, list | tuple) or not value or not all(is_int(v) for v in value):
        raise ValueError(f"k must be an integer or a [min, max] pair of integers, got {value!r}")
    if len(value) == 2:
        lo, hi = value
        if lo < 2 or hi < lo:
            raise ValueError(f"k range [{lo}, {hi}] must satisfy 2 <= min <= max")
        return list(range(lo, hi + 1))
    if min(value) < 2:
        raise ValueError(f"every k must be at least 2, got {min(value)}")
    return sorted(set(value))


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


class KMeansGrid(Strict):
    k: list[int] = Field(default_factory=lambda: list(range(2, 11)))
    n_init: int = Field(10, ge=1)

    @field_validator("k", mode="before")
    @classmethod
    def _norm_k(cls, v: Any) -> list[int]:
        return _k_range(v)


class AgglomerativeGrid(Strict):
    k: list[int] = Field(default_factory=lambda: list(range(2, 11)))
    linkage: list[Literal["ward", "average", "complete"]] = Field(
        default_factory=lambda: ["ward", "average", "complete"], min_length=1
    )

    @field_validator("k", mode="before")
    @classmethod
    def _norm_k(cls, v: Any) -> list[int]:
        return _k_range(v)


class DbscanGrid(Strict):
    eps: Literal["auto"] | list[Annotated[float, Field(gt=0)]] = "auto"
    min_samples: list[Annotated[int, Field(ge=2)]] = Field(
        default_factory=lambda: [5, 10, 20], min_length=1
    )
    # Quantiles of the k-distance curve used when eps is "auto": eps at quantile q makes a
    # share q of users core points.
    eps_quantiles: list[Annotated[float, Field(gt=0, lt=1)]] = Field(
        default_factory=lambda: [0.7, 0.75, 0.8, 0.85, 0.9, 0.93, 0.96, 0.98], min_length=1
    )
    # The neighbour pass holds every pair within the largest eps (about 24 bytes a pair at
    # its peak): an eps whose estimated pairs exceed this is skipped, with a progress line.
    # Such an eps joins most users into one cluster anyway. null: no limit.
    max_pairs: int | None = Field(25_000_000, ge=1)


class StabilityConfig(Strict):
    """Refits on seeded subsamples (apg.search.stability)."""

    resamples: int = Field(10, ge=2, le=200)
    fraction: float = Field(0.8, gt=0, lt=1)
    # Subsamples are at most this many users (m-out-of-n above max_rows / fraction).
    max_rows: int = Field(4000, ge=50)


class SearchConfig(Strict):
    kmeans: KMeansGrid | None = Field(default_factory=KMeansGrid)
    agglomerative: AgglomerativeGrid | None = Field(default_factory=AgglomerativeGrid)
    dbscan: DbscanGrid | None = Field(default_factory=DbscanGrid)
    max_clusters: int = Field(10, ge=2)
    min_cluster_share: float = Field(0.02, ge=0, lt=0.5)
    # A persona of a handful of users is an anecdote, and small-cell rules (narration.min_cell)
    # would hide its demographics anyway; on small tables this binds before the share does.
    min_cluster_size: int = Field(5, ge=1)
    # Every candidate is fitted, scored and resampled for stability: the default grid names
    # 60; a grid of thousands runs for hours.
    max_candidates: int = Field(500, ge=1)
    max_noise_share: float = Field(0.15, ge=0, le=1)
    # NumPy and scikit-learn take seeds in [0, 2**32 - 1].
    seed: int = Field(0, ge=0, le=2**32 - 1)
    # Up to this many rows every candidate is fitted on all rows; above it, on a seeded sample
    # of ``sample_size`` rows, and everyone is then assigned to the winner's clusters. An exact
    # tree holds a float64 distance matrix of 4 n^2 bytes (400 MB at 10,000 rows) next to the
    # ~450 MiB search: at 12,000 a default run passed 1 GiB (benchmarks/exact_vs_sample.py).
    exact_max_rows: int = Field(10_000, ge=100)
    sample_size: int = Field(5_000, ge=100)
    backend: Literal["local", "dask"] = "local"
    dask_address: str | None = None
    # A single Parquet source can be streamed: read a column or a batch of rows at a time,
    # never whole (same results). ``auto`` streams when a whole-table run would need more
    # than ``stream_memory_mib`` (default: half the memory available when the run starts).
    stream: Literal["auto", "on", "off"] = "auto"
    stream_memory_mib: int | None = Field(None, ge=1)
    # How the winner is chosen (README "Selection rules"): `stable` weighs stability, near
    # ties, the persona count and balance; `silhouette` is the bare highest silhouette.
    selection: Literal["stable", "silhouette"] = "stable"
    stability: StabilityConfig | None = Field(default_factory=StabilityConfig)
    min_stability: float = Field(0.6, ge=0, le=1)
    silhouette_tolerance: float = Field(0.02, ge=0, le=1)
    stability_tolerance: float = Field(0.05, ge=0, le=1)
    preferred_personas: tuple[int, int] = (3, 8)
    # A winner below this silhouette (Kaufman & Rousseeuw: < 0.25, no substantial structure)
    # or below min_stability makes the run "weak" (README "Weak structure").
    weak_silhouette: float = Field(0.25, ge=0, le=1)

    @field_validator("preferred_personas")
    @classmethod
    def _preferred(cls, v: tuple[int, int]) -> tuple[int, int]:
        lo, hi = v
        if not 2 <= lo <= hi:
            raise ValueError(f"preferred_personas [{lo}, {hi}] must satisfy 2 <= min <= max")
        return v

    @model_validator(mode="after")
    def _k_within_max_clusters(self) -> SearchConfig:
        for name in ("kmeans", "agglomerative"):
            grid = getattr(self, name)
            if grid is not None and max(grid.k) > self.max_clusters:
                raise ValueError(
                    f"{name}.k goes up to {max(grid.k)} but max_clusters is "
                    f"{self.max_clusters}: candidates above it could never be chosen; lower "
                    f"the k range or raise search.max_clusters"
                )
        return self

    @model_validator(mode="after")
    def _something_to_try(self) -> SearchConfig:
        if self.kmeans is None and self.agglomerative is None and self.dbscan is None:
            raise ValueError("all algorithms are disabled; enable kmeans, agglomerative or dbscan")
        return self

    def grid_size(self) -> int:
        """How many candidates the grid names (DBSCAN: eps values x min_samples)."""
        size = len(self.kmeans.k) if self.kmeans else 0
        if self.agglomerative:
            size += len(self.agglomerative.k) * len(self.agglomerative.linkage)
        if self.dbscan:
            eps = self.dbscan.eps_quantiles if self.dbscan.eps == "auto" else self.dbscan.eps
            size += len(eps) * len(self.dbscan.min_samples)
        return size

    @model_validator(mode="after")
    def _grid_within_max_candidates(self) -> SearchConfig:
        if self.grid_size() > self.max_candidates:
            raise ValueError(
                f"the grid names {self.grid_size():,} candidates, more than max_candidates "
                f"({self.max_candidates:,}); shorten the k, linkage, eps or min_samples lists, "
                "or raise search.max_candidates"
            )
        return self


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


class RetryConfig(Strict):
    attempts: int = Field(3, ge=0)
    delay_seconds: float = Field(600, ge=0)


class ScheduleConfig(Strict):
    cron: str = "0 3 * * mon"
    timezone: str = "UTC"
    misfire_grace_time: int = Field(6 * 3600, ge=1)
    always_run: bool = False
    retry: RetryConfig = Field(default_factory=RetryConfig)
    shutdown_grace: float = Field(60, ge=0)


# Notification events in precedence order: a message names the first one that applies
# (README "Notifications").
NOTIFY_EVENTS = ("failed", "degraded", "weak", "drift", "succeeded")
NotifyEvent = Literal["failed", "degraded", "weak", "drift", "succeeded"]


class NotifyTarget(Strict):
    """One webhook the daemon posts to after each run (apg.service.notify)."""

    url: str
    format: Literal["json", "slack"] = "json"
    events: list[NotifyEvent] = Field(default_factory=lambda: list(NOTIFY_EVENTS), min_length=1)
    headers: dict[str, str] = Field(default_factory=dict)
    # Bounds, so a slow or broken receiver never holds up the daemon: each attempt waits at
    # most `timeout` seconds, retries wait `backoff` seconds doubling, all within max_seconds.
    timeout: float = Field(10.0, gt=0, le=120)
    attempts: int = Field(3, ge=1, le=10)
    backoff: float = Field(1.0, ge=0, le=60)
    max_seconds: float = Field(30.0, gt=0, le=300)

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        from urllib.parse import urlsplit

        # The URL is not echoed: after ${ENV} expansion it may carry a token.
        parts = urlsplit(v.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                "must be an http:// or https:// URL with a host, "
                "e.g. https://hooks.slack.com/services/${SLACK_HOOK}"
            )
        return v.strip()

    @field_validator("events")
    @classmethod
    def _unique_events(cls, v: list[str]) -> list[str]:
        return list(dict.fromkeys(v))


class ServeConfig(Strict):
    # Where people reach `apg serve` (e.g. https://apg.example.com): notifications link to
    # its review pages when set.
    public_url: str | None = None

    @field_validator("public_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://, e.g. https://apg.example.com")
        return v.rstrip("/")


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


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def interpolate_env(value: Any, where: str = "") -> Any:
    """Replace ``${VAR}`` in every string of a parsed YAML tree with the environment value."""
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in os.environ:
                raise ConfigError(
                    f"{where or 'config'}: environment variable {name!r} is not set; "
                    f"export it or remove ${{{name}}} from the config"
                )
            return os.environ[name]

        return _ENV.sub(sub, value)
    if isinstance(value, dict):
        return {
            k: interpolate_env(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [interpolate_env(v, f"{where}[{i}]") for i, v in enumerate(value)]
    return value


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_TYPE_TAG = re.compile(
    r"function-(before|after|wrap|plain)\[.*\]|literal\[.*\]|list\[.*\]|dict\[.*\]"
    r"|constrained-\w+|int|float|str|bool|none|lax-or-strict\[.*\]|json-or-python\[.*\]"
)


def format_validation_error(exc: ValidationError, origin: str) -> str:
    """One line per problem, each naming the key path, e.g. ``search.kmeans.kk``."""
    lines = []
    for err in exc.errors():
        # Drop pydantic's union-member tags (the source `kind` after a list index, validator
        # and type names) so paths read like the YAML. The last part of an unknown-key error
        # is the user's own key and always kept.
        parts = list(err["loc"])
        loc: list[int | str] = []
        for i, part in enumerate(parts):
            own_key = err["type"] == "extra_forbidden" and i == len(parts) - 1
            kind_tag = (
                isinstance(part, str)
                and bool(loc)
                and loc[0] == "sources"  # notify[0].events is a key, not the events kind
                and part in SOURCE_KINDS
                and (isinstance(loc[-1], int) or loc[-1] == "from")
            )
            type_tag = isinstance(part, str) and _TYPE_TAG.fullmatch(part) is not None
            if own_key or not (kind_tag or type_tag):
                loc.append(part)
        path = _loc(tuple(loc))
        if err["type"] == "extra_forbidden":
            lines.append(
                f"unknown key {path!r}; check the spelling against the README's config reference"
            )
        elif err["type"] == "missing":
            lines.append(f"missing required key {path!r}")
        else:
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(
                f"{path or 'config'}: {msg} (got {err.get('input')!r})"
                if err["type"] != "value_error"
                else f"{path or 'config'}: {msg}"
            )
    # The offending input is echoed back; a source URL in it may carry a password.
    return mask_secrets(f"{origin}: invalid config:\n  " + "\n  ".join(lines))


# A real config has a few hundred values. YAML aliases let a short file name the same list
# many times over ("billion laughs"): safe_load shares the nodes, but anything that walks the
# tree (interpolation, validation) would visit every repeat.
MAX_CONFIG_VALUES = 100_000
MAX_CONFIG_BYTES = 1 << 20


def check_config_size(data: Any, origin: str, budget: int = MAX_CONFIG_VALUES) -> None:
    """Raise when walking ``data`` would visit more than ``budget`` values (aliases counted
    at every place they are used); stops walking as soon as it knows."""
    stack, seen = [data], 0
    while stack:
        value = stack.pop()
        seen += 1
        if seen > budget:
            raise ConfigError(
                f"{origin}: the config expands to more than {budget:,} values (YAML aliases "
                "repeating large anchors?); write the values out or shorten the lists"
            )
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def parse_config(data: Any, origin: str = "config", base_dir: Path | None = None) -> Config:
    if not isinstance(data, dict):
        raise ConfigError(
            f"{origin}: the config must be a mapping of keys, got {type(data).__name__}"
        )
    check_config_size(data, origin)
    data = interpolate_env(data)
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, origin)) from None
    if base_dir is not None:
        cfg.base_dir = base_dir
    prompts = cfg.narration.prompts_dir
    if prompts and not Path(prompts).expanduser().is_absolute():
        # Like source paths: relative to the config file, not to where apg was started.
        cfg.narration.prompts_dir = str(cfg.base_dir / prompts)
    return cfg


class _UniqueKeyLoader(yaml.SafeLoader):
    """``safe_load`` that refuses a key given twice in one mapping (YAML keeps the last one,
    silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} is given twice (lines {seen[key]} and {line}); keep one",
                    key_node.start_mark,
                )
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load_config(path: Path) -> Config:
    """Read a YAML config; relative paths inside it resolve against its folder."""
    if path.is_dir():
        raise ConfigError(f"config {str(path)!r} is a folder; pass a YAML file as --config FILE")
    if not path.is_file():
        raise ConfigError(
            f"config file {str(path)!r} does not exist; pass an existing --config FILE"
        )
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"{path}: {path.stat().st_size:,} bytes is too large for a config (at most "
            f"{MAX_CONFIG_BYTES:,}); is it the right file?"
        )
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as exc:
        # One line: where, and what is wrong (PyYAML's own text quotes the source around it).
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file") from None
    return parse_config(data, str(path), base_dir=path.resolve().parent)
