"""What a run starts from: the config (a path, a dict or a :class:`~apg.config.Config`, with the
keyword arguments of :func:`apg.generate` over it) and, for a DataFrame, the source table.

Every form of config becomes one plain dict, the keyword arguments are written into it and it is
validated once by :func:`apg.config.parse_config`, so an override is checked exactly like the
same key in a YAML file (roles disjoint, the id not a feature, seeds in range...).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from apg.config import Config, NarrationConfig, load_config, parse_config
from apg.errors import ConfigError, DataError, listing
from apg.sources import SourceContext, SourceTable
from apg.sources.base import SourceSpec

# The id column a run without one numbers its rows into: 1 = the first row (as apg run --data).
ROW_ID = "row"
ROLES = ("behavioral", "attitudinal", "demographic", "outcome")
MAX_SEED = 2**32 - 1  # what NumPy and scikit-learn accept
# How a run from a DataFrame names its source in the recorded config: no file is read.
FRAME_SOURCE = "<DataFrame>"

ConfigLike = Config | Mapping[str, Any] | str | os.PathLike[str]
LlmLike = str | Mapping[str, Any] | NarrationConfig


class _Unset(int):
    """The default of ``seed``: reads as 0, but tells "not given" (the config's search.seed
    wins) from an explicit ``seed=0`` (which overrides it)."""

    def __repr__(self) -> str:
        return "0"


UNSET_SEED: int = _Unset(0)


class _FrameSpec(SourceSpec):
    """The DataFrame as a source, only so its rows get the checks every source gets (empty and
    duplicate ids) with messages that name it."""

    kind: str = "frame"

    def describe(self) -> str:
        return "the DataFrame"


def resolve_config(
    frame: pd.DataFrame | None,
    *,
    id: str | None,
    roles: Mapping[str, Iterable[str] | str],
    config: ConfigLike | None,
    llm: LlmLike | None,
    seed: int,
) -> tuple[Config, Path | None, bool]:
    """The run's config, the config file it came from (if any) and whether the DataFrame's rows
    are numbered into :data:`ROW_ID` (a DataFrame run that names no id column)."""
    raw, base_dir, origin, path = _raw_config(config, frame)
    features = dict(raw.get("features") or {})
    for role in ROLES:
        names = _names(roles.get(role, ()), role)
        if names:
            features[role] = names
    if features or "features" in raw:
        raw["features"] = features
    if config is None and not (features.get("behavioral") or features.get("attitudinal")):
        raise ConfigError(
            "generate() needs behavioral= and/or attitudinal= columns to cluster (or a config "
            "with features)"
        )
    numbered = False
    if id is not None:
        if not isinstance(id, str) or not id:
            raise ConfigError(f"id={id!r}: give the id column's name, or id=None to number rows")
        raw["id_column"] = id
    elif frame is not None and "id_column" not in raw:
        numbered = True
        raw["id_column"] = ROW_ID
    if frame is not None:
        # The DataFrame is the one source; the config's sources, if any, are not read.
        source: dict[str, Any] = {"kind": "file", "path": FRAME_SOURCE}
        if numbered:
            source["row_id"] = ROW_ID
        raw["sources"] = [source]
        # A frame in memory is whole: there is nothing to stream.
        raw["search"] = {**dict(raw.get("search") or {}), "stream": "off"}
    elif not raw.get("sources"):
        raise ConfigError(f"{origin}: no sources; pass a DataFrame or add `sources:`")
    if seed is not UNSET_SEED:
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
            raise ConfigError(f"seed={seed!r}: a seed is a whole number from 0 to {MAX_SEED}")
        if not 0 <= int(seed) <= MAX_SEED:
            raise ConfigError(f"seed={seed}: a seed is a whole number from 0 to {MAX_SEED}")
        raw["search"] = {**dict(raw.get("search") or {}), "seed": int(seed)}
    if llm is not None:
        raw["narration"] = _narration(dict(raw.get("narration") or {}), llm)
    return parse_config(raw, origin, base_dir=base_dir), path, numbered


def _raw_config(
    config: ConfigLike | None, frame: pd.DataFrame | None
) -> tuple[dict[str, Any], Path, str, Path | None]:
    """(settings as a dict, the folder relative paths resolve against, the name messages give
    the config, its file)."""
    if config is None:
        if frame is None:
            raise ConfigError("generate() needs a DataFrame, or config= naming the sources to read")
        return {}, Path.cwd(), "generate()", None
    if isinstance(config, Config):
        # The dump leaves out base_dir (a field excluded from dumps); it is carried over.
        return config.model_dump(mode="json"), config.base_dir, "generate(config=...)", None
    if isinstance(config, Mapping):
        return copy.deepcopy(dict(config)), Path.cwd(), "generate(config={...})", None
    if isinstance(config, str | os.PathLike):
        path = Path(config)
        loaded = load_config(path)
        return loaded.model_dump(mode="json"), loaded.base_dir, str(path), path
    raise ConfigError(
        f"config= takes a YAML file path, a dict or an apg.config.Config, "
        f"got {type(config).__name__}"
    )


def _names(value: Iterable[str] | str, role: str) -> list[str]:
    # A single name is one column, not its letters.
    names = [value] if isinstance(value, str) else list(value)
    bad = [n for n in names if not isinstance(n, str) or not n]
    if bad:
        raise ConfigError(f"{role}=: column names are non-empty strings, got {bad[0]!r}")
    return names


def _narration(current: dict[str, Any], llm: LlmLike) -> dict[str, Any]:
    """``llm=``: a client name (``"offline"``, ``"openai"``), a dict of narration settings
    over the config's, or a whole :class:`NarrationConfig`."""
    if isinstance(llm, NarrationConfig):
        return llm.model_dump(mode="json")
    if isinstance(llm, str):
        return {**current, "client": llm}
    if isinstance(llm, Mapping):
        return {**current, **dict(llm)}
    raise ConfigError(
        f"llm= takes 'offline', 'openai', a dict of narration settings or a NarrationConfig, "
        f"got {type(llm).__name__}"
    )


def frame_table(frame: pd.DataFrame, config: Config, numbered: bool) -> SourceTable:
    """The DataFrame as the run's source table, as a CSV of the same rows would be read: ids
    as text (so fingerprints and member ids match a run from the file), every id present and
    unique, rows renumbered from 0. The caller's frame is never changed."""
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"generate() takes a pandas DataFrame, got {type(frame).__name__}")
    if frame.empty or len(frame.columns) == 0:
        raise DataError("the DataFrame has no rows; pass the user table to cluster")
    data = frame.copy()
    key = config.id_column
    if numbered:
        if ROW_ID in data.columns:
            raise DataError(
                f"the DataFrame already has a column {ROW_ID!r}, so rows cannot be numbered "
                f"into it; if it identifies the users pass id={ROW_ID!r}"
            )
        data.insert(0, ROW_ID, np.arange(1, len(data) + 1, dtype=np.int64))
    elif key not in data.columns:
        raise DataError(
            f"id column {key!r} is not in the DataFrame; columns are {listing(data.columns)}; "
            "pass id=COLUMN, or id=None to number the rows"
        )
    else:
        ids = data[key]
        data[key] = ids.astype(str).where(ids.notna())
    spec = _FrameSpec()
    ctx = SourceContext(base_dir=config.base_dir, id_column=key)
    data = spec.finish(data, ctx)
    return SourceTable(
        frame=data,
        rows_per_source=[len(data)],
        labels=[spec.label(ctx)],
        columns_per_source=[[str(c) for c in data.columns if c != key]],
    )


def run_inputs(config: Config, config_path: Path | None, database: Path | None) -> list[Path]:
    """The files a run reads or writes besides its output (its config, every local source file
    and its SQLite store), which an output folder must never hold."""
    paths = [config_path] if config_path else []
    for position, spec in enumerate(config.sources, 1):
        if getattr(spec, "path", None) == FRAME_SOURCE:
            continue
        ctx = SourceContext(base_dir=config.base_dir, id_column=config.id_column, position=position)
        paths += spec.local_paths(ctx)
    return [*paths, database] if database else paths
