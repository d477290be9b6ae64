"""``labels:``: how a column is shown (display name, unit, number format, value labels)."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from apg.config.base import Strict


def code_key(code: object) -> str:
    """A code as the key value labels are looked up by: ``1``, ``1.0``, ``"1"`` and
    ``" 1 "`` are all ``"1"``; ``True`` is ``"True"``; text is stripped."""
    if isinstance(code, bool):
        return str(code)
    if isinstance(code, int):
        return str(code)
    if isinstance(code, float):
        return str(int(code)) if math.isfinite(code) and code.is_integer() else repr(code)
    text = str(code).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    if math.isfinite(number) and number.is_integer() and re.fullmatch(r"[+-]?\d+(\.0*)?", text):
        return str(int(number))
    return text


class ColumnLabelConfig(Strict):
    """How one column is shown (``labels:``; apg.narration.display, docs/labels.md). A bare
    string is the display name: ``labels: {MntWines: wine spend}``."""

    name: str | None = Field(None, min_length=1, max_length=60)
    unit: str | None = Field(None, min_length=1, max_length=12)
    format: Literal["auto", "currency", "percent", "count", "year", "plain"] = "auto"
    decimals: int | None = Field(None, ge=0, le=6)
    # Code -> label (``{1: Horeca, 2: Retail}``); codes are kept as text, 1 and 1.0 alike.
    values: dict[str, Annotated[str, Field(min_length=1, max_length=60)]] = Field(
        default_factory=dict
    )

    @model_validator(mode="before")
    @classmethod
    def _name_only(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v

    @field_validator("values", mode="before")
    @classmethod
    def _code_keys(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        out: dict[str, Any] = {}
        for code, label in v.items():
            key = code_key(code)
            if key in out:
                raise ValueError(f"code {code!r} is given twice (as {key!r}); keep one")
            out[key] = str(label) if isinstance(label, int | float) else label
        return out

    @model_validator(mode="after")
    def _values_are_codes(self) -> ColumnLabelConfig:
        if self.values and self.format in ("currency", "percent", "count", "year"):
            raise ValueError(
                f"value labels name the codes of a category column, but the column is "
                f"formatted as {self.format} (an amount); drop 'values' or 'format'"
            )
        return self
