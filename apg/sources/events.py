"""An event or transaction log, read through another source, aggregated to one row per user.

Order of work: read ``from:`` -> check every name and expression on a zero-row copy -> parse
``time`` -> ``derive`` -> ``filter`` -> drop events without a user (or time) -> keep
``as_of - window_days < time <= as_of`` -> aggregate each feature (see
:mod:`apg.sources.aggregate`). ``as_of`` defaults to the latest event time after ``filter``; a
date without a time of day means midnight at its start. The ``user`` column becomes the run's
id column.
"""

from __future__ import annotations

import warnings
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
from pandas.api import types as ptypes
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_serializer,
    model_validator,
)

from apg.errors import listing
from apg.sources.aggregate import FLAG_OPS, NUMERIC_OPS, OPS, TIME_OPS, Events, aggregate_one
from apg.sources.base import SourceContext, SourceSpec
from apg.sources.expressions import (
    ExpressionError,
    check_expression,
    check_syntax,
    condition_mask,
    evaluate,
)
from apg.sources.file import FileSource
from apg.sources.http import HttpSource
from apg.sources.sql import SqlSource

# What `from:` may be: any kind that yields rows (not another events source).
EventInput = Annotated[FileSource | SqlSource | HttpSource, Field(discriminator="kind")]


class Feature(BaseModel):
    """One aggregation, written in YAML as ``{sum: amount, where: "..."}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    op: str  # one of OPS, checked when read from YAML
    column: str | None = None
    where: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, data: Any) -> Any:
        if isinstance(data, Feature):
            return data
        if not isinstance(data, dict):
            raise ValueError(
                f"write a feature as one aggregation, e.g. {{sum: amount}} or {{count: true}}; "
                f"aggregations are {', '.join(OPS)}"
            )
        unknown = [k for k in data if k not in OPS and k != "where"]
        if unknown:
            raise ValueError(
                f"unknown key(s) {listing(unknown)}; aggregations are {', '.join(OPS)}"
            )
        ops = [k for k in data if k in OPS]
        if len(ops) != 1:
            raise ValueError(
                f"give exactly one aggregation, got {len(ops)} ({', '.join(ops) or 'none'})"
            )
        op, value = ops[0], data[ops[0]]
        if op in FLAG_OPS or (op == "count" and isinstance(value, bool)):
            if value is not True:
                raise ValueError(f"write `{op}: true`")
            column = None
        elif isinstance(value, str) and value:
            column = value
        else:
            raise ValueError(f"`{op}:` takes a column name, got {value!r}")
        return {"op": op, "column": column, "where": data.get("where")}

    @model_serializer
    def _to_yaml(self) -> dict[str, Any]:
        """Back to the config form, so a dumped config validates again."""
        out: dict[str, Any] = {self.op: self.column if self.column is not None else True}
        if self.where is not None:
            out["where"] = self.where
        return out


class EventsSource(SourceSpec):
    # `from` is a Python keyword, so the field has another name and the config key as alias.
    model_config = ConfigDict(extra="forbid", serialize_by_alias=True)

    kind: Literal["events"] = "events"
    source: EventInput = Field(alias="from")
    user: str
    time: str | None = None
    time_format: str | None = None  # strftime format, e.g. "%d-%m-%Y %H:%M"
    time_unit: Literal["s", "ms", "us", "ns"] | None = None  # numeric epoch times
    dayfirst: bool = False
    as_of: datetime | None = None
    window_days: float | None = Field(None, gt=0)
    filter: str | None = None
    derive: dict[str, str] = Field(default_factory=dict)
    features: dict[str, Feature] = Field(min_length=1)

    @field_validator("as_of", mode="before")
    @classmethod
    def _as_of(cls, value: Any) -> Any:
        if value is None or isinstance(value, datetime):
            return value
        if isinstance(value, date):
            return datetime(value.year, value.month, value.day)
        try:
            stamp = pd.Timestamp(value)
        except (ValueError, TypeError):
            raise ValueError(f"cannot read {value!r} as a date; write it like 2011-12-10") from None
        if stamp.tzinfo is not None:
            stamp = stamp.tz_convert("UTC").tz_localize(None)
        return stamp.to_pydatetime()

    @model_validator(mode="after")
    def _consistent(self) -> EventsSource:
        if self.id is not None:
            raise ValueError("an events source names its user column with `user:`, not `id:`")
        src = self.source
        inner = [k for k in ("id", "dedupe") if getattr(src, k) is not None]
        inner += ["join"] if src.join != "left" else []
        if inner:
            raise ValueError(
                f"`from:` key(s) {listing(inner)} do not apply to an event log (it has "
                "many rows per user); set them on the events source"
            )
        if self.time is None:
            timed = [f"{name} ({f.op})" for name, f in self.features.items() if f.op in TIME_OPS]
            timed += [k for k in ("as_of", "window_days") if getattr(self, k) is not None]
            if timed:
                raise ValueError(f"{listing(timed)} need(s) `time:` (the event time column)")
        expressions = {"filter": self.filter, **{f"derive.{k}": v for k, v in self.derive.items()}}
        expressions |= {f"features.{k}.where": f.where for k, f in self.features.items()}
        for key, expr in expressions.items():
            try:
                check_syntax([expr] if expr is not None else [])
            except ExpressionError as exc:
                raise ValueError(f"{key}: {exc}") from None
        return self

    def secret_values(self) -> list[str]:
        return self.source.secret_values()

    def local_paths(self, ctx: SourceContext) -> list[Path]:
        return self.source.local_paths(ctx)

    def read(self, ctx: SourceContext) -> pd.DataFrame:
        inner_ctx = SourceContext(ctx.base_dir, ctx.id_column, ctx.position, within=self.label(ctx))
        frame = self.source.read(inner_ctx)
        if self.source.rename:
            missing = [c for c in self.source.rename if c not in frame.columns]
            if missing:
                raise self.source.error(
                    inner_ctx,
                    f"rename: column(s) {listing(missing)} not found; "
                    f"columns are {listing(frame.columns)}",
                )
            frame = frame.rename(columns=self.source.rename)
        self._check(frame.iloc[:0], ctx)
        frame = frame.reset_index(drop=True)
        times = self._times(frame, ctx) if self.time else None
        if times is not None:
            frame[self.time] = times
        for name, expr in self.derive.items():
            frame[name] = evaluate(expr, frame)
        keep = frame[self.user].notna()
        if self.filter:
            keep &= condition_mask(self.filter, frame)
        if times is not None:
            keep &= times.notna()
        as_of = self._as_of_stamp(times[keep] if times is not None else None)
        if times is not None and as_of is not None:
            keep &= times <= as_of
            if self.window_days is not None:
                keep &= times > as_of - pd.Timedelta(days=self.window_days)
        frame = frame[keep].reset_index(drop=True)
        if frame.empty:
            raise self.error(
                ctx,
                "no events left after `filter`, `as_of` and `window_days`; "
                "loosen them or check the time column",
            )
        users = frame[self.user]
        if ptypes.is_float_dtype(users.dtype) and bool((users % 1 == 0).all()):
            # A log with missing user ids reads them as floats (17850.0); those rows are gone.
            frame[self.user] = users.astype("int64")
        ev = Events.build(frame, self.user, frame[self.time] if self.time else None, as_of)
        out = {ctx.id_column: pd.Series(ev.users)}
        for name, feature in self.features.items():
            result = aggregate_one(ev, feature.op, feature.column, feature.where)
            out[name] = result.reset_index(drop=True)  # keeps dtypes (Int64, str, datetime)
        return pd.DataFrame(out)

    # -- checks ------------------------------------------------------------------------------

    def _check(self, sample: pd.DataFrame, ctx: SourceContext) -> None:
        """Every column name and expression, against the real columns, before any work."""
        columns = listing(sample.columns, 40)
        for key in ("user", "time"):
            name = getattr(self, key)
            if name is not None and name not in sample.columns:
                raise self.error(ctx, f"{key} column {name!r} not found; columns are {columns}")
        if self.time:
            sample[self.time] = pd.Series(pd.to_datetime([]), index=sample.index)
        for name, expr in self.derive.items():
            sample[name] = self._expr(ctx, f"derive.{name}", expr, sample, condition=False)
        if self.filter:
            self._expr(ctx, "filter", self.filter, sample, condition=True)
        for name, feature in self.features.items():
            where = f"features.{name}"
            if name == ctx.id_column:
                raise self.error(ctx, f"{where}: the name {name!r} is the id column; pick another")
            col = feature.column
            if col is not None and col not in sample.columns:
                raise self.error(
                    ctx,
                    f"{where}: {feature.op}: unknown column {col!r}; columns are "
                    f"{listing(sample.columns, 40)}",
                )
            if (
                feature.op in NUMERIC_OPS
                and col is not None
                and not (
                    ptypes.is_numeric_dtype(sample[col].dtype)
                    or ptypes.is_bool_dtype(sample[col].dtype)
                )
            ):
                raise self.error(
                    ctx,
                    f"{where}: {feature.op} needs a numeric column, but {col!r} "
                    f"holds {sample[col].dtype} values; convert it with `derive:`",
                )
            if feature.where:
                self._expr(ctx, f"{where}.where", feature.where, sample, condition=True)

    def _expr(
        self, ctx: SourceContext, where: str, expr: str, sample: pd.DataFrame, *, condition: bool
    ) -> pd.Series:
        try:
            return check_expression(expr, sample, condition=condition)
        except ExpressionError as exc:
            raise self.error(ctx, f"{where}: {exc}") from None

    def _times(self, frame: pd.DataFrame, ctx: SourceContext) -> pd.Series:
        assert self.time is not None
        raw = frame[self.time]
        if ptypes.is_datetime64_any_dtype(raw.dtype):
            parsed = raw
        elif ptypes.is_numeric_dtype(raw.dtype) and self.time_unit is None:
            raise self.error(
                ctx,
                f"time column {self.time!r} holds numbers (e.g. "
                f"{raw.dropna().iloc[0] if raw.notna().any() else 'none'}); set "
                "`time_unit:` to s or ms for epoch times",
            )
        else:
            try:
                with warnings.catch_warnings():
                    # "Could not infer format": bad values are reported below, with a sample.
                    warnings.simplefilter("ignore", UserWarning)
                    parsed = pd.to_datetime(
                        raw,
                        format=self.time_format,
                        dayfirst=self.dayfirst,
                        unit=self.time_unit,
                        errors="coerce",
                    )
            except (ValueError, TypeError) as exc:
                raise self.error(
                    ctx, f"time column {self.time!r} cannot be parsed: {exc}"
                ) from None
        bad = parsed.isna() & raw.notna()
        if bad.any():
            fmt = repr(self.time_format) if self.time_format else "inferred from the first value"
            raise self.error(
                ctx,
                f"time column {self.time!r} has {int(bad.sum())} value(s) that are not dates "
                f"(format {fmt}), e.g. {str(raw[bad].iloc[0])!r}; set `time_format:` (like "
                "'%d-%m-%Y %H:%M') or `dayfirst: true`, or fix the data",
            )
        if getattr(parsed.dtype, "tz", None) is not None:
            parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
        return parsed

    def _as_of_stamp(self, times: pd.Series | None) -> pd.Timestamp | None:
        if self.as_of is not None:
            return pd.Timestamp(self.as_of)
        if times is None or times.empty:
            return None
        return times.max()
