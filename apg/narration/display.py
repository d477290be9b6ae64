"""How columns and their values are shown to people: display names, units, value labels and
number formats (the config's ``labels:`` section, docs/labels.md).

One :class:`Labels` object answers three questions for every place that shows data — persona
names, fact sheets, narratives, report cards, report.md/report.html, the review page:

- :meth:`Labels.display_name` — ``Channel`` -> ``sales channel`` (configured) or the
  humanised column name (``MntWines`` -> ``spend on wines``);
- :meth:`Labels.format_value` — ``1971.0`` -> ``1971`` for a year, ``12669`` -> ``$12,669``
  for money, ``0.253`` -> ``25.3%`` for a share;
- :meth:`Labels.value_label` — the code ``1`` of ``Channel`` -> ``Horeca``.

Files and JSON keep the column names and codes; only display text changes. Without a
``labels:`` section the defaults already read well: humanised names, years without a thousands
separator or decimals, whole numbers without ``.0``, a unit in the column name's brackets
(``Annual Income (k$)``) kept as the unit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import pandas as pd

from apg.config import code_key
from apg.errors import ConfigError
from apg.narration.labels import capitalise, clean, fmt, fmt_pct, humanise, is_year

NumberFormat = Literal["auto", "currency", "percent", "count", "year", "plain"]
FORMATS: tuple[str, ...] = get_args(NumberFormat)
# Formats of measured quantities: a column shown this way holds amounts, not codes.
QUANTITY_FORMATS = frozenset({"currency", "percent", "count", "year"})
MAX_DECIMALS = 6
# A code column has whole-number (or text) values and at most this many distinct ones when
# value labels do not name more (apg.prepare.features.MAX_CODE_VALUES is 12; text has up to
# preprocessing.max_categories).
MAX_CODES = 100

# Units written before the number ("$1,200"); every other unit follows it ("15 k$", "3 days"),
# and "%" follows without a space ("25%").
PREFIX_UNITS = frozenset({"$", "€", "£", "¥", "₹", "US$", "C$", "A$", "R$", "CHF"})
# Units recognised in a column name's brackets or trailing word (``Annual Income (k$)``,
# ``price_usd``): the unit and whether it is money.
_NAME_UNITS: dict[str, tuple[str, bool]] = {
    "$": ("$", True),
    "€": ("€", True),
    "£": ("£", True),
    "k$": ("k$", True),
    "k€": ("k€", True),
    "usd": ("$", True),
    "eur": ("€", True),
    "gbp": ("£", True),
    "%": ("%", False),
}
_BRACKETS = re.compile(r"[\(\[\{]\s*([^\)\]\}]+?)\s*[\)\]\}]")
_TRAILING = re.compile(r"[_\s\-]([A-Za-z%$€£]+)\s*$")


@dataclass(frozen=True)
class ColumnLabel:
    """What the ``labels:`` section says about one column (every part optional)."""

    name: str | None = None
    unit: str | None = None
    format: NumberFormat = "auto"
    decimals: int | None = None
    values: Mapping[str, str] = field(default_factory=dict)


def unit_from_name(column: str) -> tuple[str | None, bool]:
    """The unit a column name states, and whether it is money: ``Annual Income (k$)`` ->
    ``("k$", True)``, ``price_usd`` -> ``("$", True)``; ``Spending Score (1-100)`` -> none."""
    found = _BRACKETS.search(column)
    if found and (hit := _NAME_UNITS.get(found.group(1).strip().lower())):
        return hit
    # A trailing word names only money: "_pct" may hold shares from 0 to 1 or percentages.
    trailing = _TRAILING.search(column)
    if trailing and (hit := _NAME_UNITS.get(trailing.group(1).lower())) and hit[1]:
        return hit
    return None, False


def _whole(value: float) -> bool:
    return abs(value - round(value)) < 1e-9 * max(1.0, abs(value))


def _fixed(value: float, decimals: int) -> str:
    text = f"{value:,.{decimals}f}"
    return "0" if text.strip("-0.,") == "" else text


def format_number(
    value: float,
    kind: NumberFormat = "plain",
    *,
    decimals: int | None = None,
    unit: str | None = None,
) -> str:
    """One number for people, by kind (``auto`` reads as ``plain`` here; the column decides
    ``auto`` in :meth:`Labels.kind`):

    - ``year``: no separator, no decimals — ``1971``;
    - ``count``: separators, whole numbers without decimals, others (means) to one decimal;
    - ``currency``: separators, no decimals from 100 up, else two (``$12,669``, ``$4.50``);
    - ``percent``: a share from 0 to 1 as a percentage — ``0.253`` -> ``25.3%``;
    - ``plain``: about three significant digits (:func:`apg.narration.labels.fmt`).

    ``decimals`` fixes the decimals of any kind but ``year``; ``unit`` is written before the
    number for currency symbols (``$``), right after it for ``%``, else after a space.
    """
    if not math.isfinite(value):
        return "n/a"
    if kind == "year":
        return str(round(value))
    if kind == "percent":
        if decimals is None:
            return fmt_pct(value)
        return f"{_fixed(value * 100, decimals)}%"
    if decimals is not None:
        text = _fixed(value, decimals)
    elif kind == "count":
        text = _fixed(value, 0 if _whole(value) else 1)
    elif kind == "currency":
        text = _fixed(value, 0 if abs(value) >= 100 or _whole(value) else 2)
    else:
        text = fmt(value)
    return with_unit(text, unit)


def with_unit(text: str, unit: str | None) -> str:
    """``"12"`` with ``$`` -> ``$12``; with ``%`` -> ``12%``; with ``days`` -> ``12 days``."""
    if not unit:
        return text
    if unit in PREFIX_UNITS:
        sign, digits = ("-", text[1:]) if text.startswith("-") else ("", text)
        return f"{sign}{unit}{digits}"
    if unit == "%":
        return f"{text}%"
    return f"{text} {unit}"


class Labels:
    """Display names, units, value labels and number formats of a run's columns.

    ``Labels()`` is the default every function falls back on: humanised names, formats by
    name (years) and units from the column name's brackets.
    """

    def __init__(self, columns: Mapping[str, ColumnLabel] | None = None) -> None:
        self.columns: dict[str, ColumnLabel] = dict(columns or {})

    @classmethod
    def from_config(cls, spec: Mapping[str, Any] | None) -> Labels:
        """From the config's ``labels`` (validated models) or their JSON dump (a stored run's
        config); unknown keys in a dump are ignored so older or newer runs still read."""
        out: dict[str, ColumnLabel] = {}
        for col, entry in (spec or {}).items():
            data = entry if isinstance(entry, Mapping) else entry.model_dump()
            fmt_kind = data.get("format") or "auto"
            decimals = data.get("decimals")
            out[str(col)] = ColumnLabel(
                name=data.get("name") or None,
                unit=data.get("unit") or None,
                format=fmt_kind if fmt_kind in FORMATS else "auto",
                decimals=int(decimals) if decimals is not None else None,
                values={code_key(k): str(v) for k, v in (data.get("values") or {}).items()},
            )
        return cls(out)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Labels) and self.columns == other.columns

    def __repr__(self) -> str:
        return f"Labels({sorted(self.columns)})"

    def _of(self, column: str) -> ColumnLabel:
        return self.columns.get(column) or ColumnLabel()

    def display_name(self, column: str) -> str:
        """The name people read: configured, else humanised (``Year_Birth`` -> ``birth year``)."""
        name = self._of(column).name
        return clean(name) if name else humanise(column)

    def title(self, column: str) -> str:
        """The display name for a heading or a table cell: ``Birth year``."""
        return capitalise(self.display_name(column))

    def unit(self, column: str) -> str | None:
        """The configured unit, else one the column name states (``Income (k$)``)."""
        label = self._of(column)
        if label.unit:
            return clean(label.unit, 12)
        if label.format in ("year", "percent"):
            return None
        return unit_from_name(column)[0]

    def kind(self, column: str, value: float | None = None) -> NumberFormat:
        """The number format of ``column`` (``auto`` resolved): configured, else ``year`` for a
        column named as years whose value has four digits, ``currency`` for a money unit in
        its name, else ``plain``."""
        label = self._of(column)
        if label.format != "auto":
            return label.format
        unit = label.unit or unit_from_name(column)[0]
        if unit in PREFIX_UNITS or (not label.unit and unit_from_name(column)[1]):
            return "currency"
        if is_year(column) and (value is None or 1000 <= abs(value) < 10_000):
            return "year"
        return "plain"

    def format_value(self, column: str, value: float | None) -> str:
        """A value of ``column`` for people, with its unit: ``1971``, ``$12,669``, ``3 days``."""
        if value is None:
            return "–"
        label = self._of(column)
        return format_number(
            float(value),
            self.kind(column, float(value)),
            decimals=label.decimals,
            unit=self.unit(column),
        )

    def value_label(self, column: str, code: object) -> str:
        """The label of a code (``Channel`` ``1`` -> ``Horeca``), else the code as text."""
        values = self._of(column).values
        if values:
            hit = values.get(code_key(code))
            if hit is not None:
                return clean(hit)
        return clean(code)

    def to_config(self) -> dict[str, dict[str, Any]]:
        """The ``labels:`` section this was built from, as JSON values (stored reports)."""
        out: dict[str, dict[str, Any]] = {}
        for col, label in sorted(self.columns.items()):
            entry = {
                "name": label.name,
                "unit": label.unit,
                "format": label.format,
                "decimals": label.decimals,
                "values": dict(label.values),
            }
            out[col] = {k: v for k, v in entry.items() if v not in (None, {}, "auto")}
        return out

    def has_values(self, column: str) -> bool:
        return bool(self._of(column).values)

    def as_dict(self, columns: Iterable[str]) -> dict[str, dict[str, Any]]:
        """How each of ``columns`` is shown, for ``personas.json`` (``data.labels``)."""
        out: dict[str, dict[str, Any]] = {}
        for col in columns:
            label = self._of(col)
            entry: dict[str, Any] = {"name": self.display_name(col), "format": self.kind(col)}
            if self.unit(col):
                entry["unit"] = self.unit(col)
            if label.decimals is not None:
                entry["decimals"] = label.decimals
            if label.values:
                entry["values"] = {k: clean(v) for k, v in label.values.items()}
            out[col] = entry
        return out


DEFAULT_LABELS = Labels()


def check_display_names(labels: Labels, columns: Iterable[str]) -> None:
    """Two columns shown under one name would read as one fact. Only a configured name can be
    wrong here: humanised defaults that meet (spend, spend_cents) are as before."""
    seen: dict[str, str] = {}
    for col in columns:
        shown = labels.display_name(col)
        name = " ".join(shown.casefold().split())
        named = [
            c for c in (col, seen.get(name)) if c and labels.columns.get(c, ColumnLabel()).name
        ]
        if name in seen and named:
            raise ConfigError(
                f"labels: {seen[name]!r} and {col!r} would both be shown as {shown!r}; give "
                f"labels.{col}.name (or labels.{seen[name]}.name) a different name"
            )
        seen[name] = col


def check_value_labels(labels: Labels, frame: Any) -> None:
    """Value labels belong to code columns: text, flags, or whole numbers with few distinct
    values. ``frame``: the run's :class:`apg.prepare.features.FeatureFrame` (raw values)."""
    for col, label in labels.columns.items():
        if not label.values or col not in frame.raw:
            continue
        present = frame.raw[col].dropna()
        if not pd.api.types.is_numeric_dtype(present) or pd.api.types.is_bool_dtype(present):
            continue
        distinct = present.nunique()
        whole = bool((present.astype(float) % 1 == 0).all())
        if not whole or distinct > max(MAX_CODES, len(label.values)):
            what = "fractional values" if not whole else f"{distinct:,} distinct values"
            raise ConfigError(
                f"labels.{col}.values: {col!r} is not a code column (it has {what}); value "
                "labels name the codes of a category column such as Channel 1/2. Remove "
                f"'values' from labels.{col}, or give it a unit and format instead"
            )
