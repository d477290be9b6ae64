"""The run configuration: pydantic models for ``configs/*.yaml``.

Unknown keys are errors (``extra="forbid"``) so a typo never silently falls back to a default.
Defaults are the values documented in the README; nothing that is not configured is applied.

A package: :mod:`.model` (the run config), :mod:`.search`, :mod:`.service`, :mod:`.labels`
(sections), :mod:`.loading` (YAML, ``${ENV}``, error messages). May import: errors, sources.
"""

from __future__ import annotations

from apg.config.base import Strict
from apg.config.labels import ColumnLabelConfig, code_key
from apg.config.loading import (
    MAX_CONFIG_BYTES,
    MAX_CONFIG_VALUES,
    check_config_size,
    format_validation_error,
    interpolate_env,
    load_config,
    parse_config,
)
from apg.config.model import (
    Config,
    ContinuityConfig,
    FeaturesConfig,
    NarrationConfig,
    PreprocessingConfig,
    StorageConfig,
)
from apg.config.search import (
    AgglomerativeGrid,
    DbscanGrid,
    KMeansGrid,
    SearchConfig,
    StabilityConfig,
)
from apg.config.service import (
    NOTIFY_EVENTS,
    NotifyEvent,
    NotifyTarget,
    RetryConfig,
    ScheduleConfig,
    ServeConfig,
)

__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_CONFIG_VALUES",
    "NOTIFY_EVENTS",
    "AgglomerativeGrid",
    "ColumnLabelConfig",
    "Config",
    "ContinuityConfig",
    "DbscanGrid",
    "FeaturesConfig",
    "KMeansGrid",
    "NarrationConfig",
    "NotifyEvent",
    "NotifyTarget",
    "PreprocessingConfig",
    "RetryConfig",
    "ScheduleConfig",
    "SearchConfig",
    "ServeConfig",
    "StabilityConfig",
    "StorageConfig",
    "Strict",
    "check_config_size",
    "code_key",
    "format_validation_error",
    "interpolate_env",
    "load_config",
    "parse_config",
]
