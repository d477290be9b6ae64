"""Validate pandas ``query``/``eval`` strings before any work is done with them.

An events source has a ``filter``, ``derive`` formulas and per-feature ``where`` conditions.
A typo in one should fail at once, naming the unknown column(s) and the columns that exist,
not after a million rows have been read and half aggregated. Two checks: the expression is
parsed (syntax, names), then evaluated on a zero-row frame with the real columns and dtypes
(operator/type mistakes, and that a condition yields True/False).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable

import pandas as pd
from pandas.api import types as ptypes

from apg.errors import listing

_BACKTICK = re.compile(r"`([^`]*)`")


class ExpressionError(ValueError):
    """An expression cannot run; the message names the expression and what is wrong."""


def names_in(expr: str) -> set[str]:
    """Column names an expression refers to (backtick-quoted names included).

    Function names (``abs(x)``), attribute names (``x.str.len()``) and literals are not columns.
    Raises :class:`ExpressionError` for a syntax error or an unsupported ``@local`` reference.
    """
    if not expr.strip():
        raise ExpressionError("the expression is empty")
    quoted: dict[str, str] = {}

    def hide(m: re.Match[str]) -> str:
        token = f"__apg_col_{len(quoted)}__"
        quoted[token] = m.group(1)
        return token

    plain = _BACKTICK.sub(hide, expr)
    if "@" in plain:
        raise ExpressionError(
            f"{expr!r}: local variables ('@name') are not available; write the value"
        )
    if "`" in plain:
        raise ExpressionError(f"{expr!r}: unbalanced backtick; quote a column name as `my column`")
    try:
        tree = ast.parse(plain.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"{expr!r} is not a valid expression ({exc.msg})") from None
    functions = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and id(node) not in functions:
            names.add(quoted.get(node.id, node.id))
    return names


def check_expression(expr: str, sample: pd.DataFrame, *, condition: bool) -> pd.Series:
    """Validate ``expr`` against ``sample`` (a zero-row frame with the real columns) and return
    its result there. ``condition`` requires a True/False result (``filter``, ``where``)."""
    unknown = sorted(names_in(expr) - {str(c) for c in sample.columns})
    if unknown:
        raise ExpressionError(
            f"{expr!r} uses unknown column(s) {listing(unknown)}; columns are "
            f"{listing(sample.columns, 40)} (quote names with spaces in backticks)"
        )
    try:
        result = sample.eval(expr)
    except Exception as exc:  # pandas raises many types for a bad expression
        raise ExpressionError(f"{expr!r} cannot be evaluated: {_short(exc)}") from None
    if not isinstance(result, pd.Series):
        result = pd.Series([result] * len(sample), index=sample.index)
    if condition and not ptypes.is_bool_dtype(result.dtype):
        raise ExpressionError(
            f'{expr!r} must be a condition (True or False per row, e.g. "Quantity > 0"), '
            f"but gives {result.dtype} values"
        )
    return result


def evaluate(expr: str, frame: pd.DataFrame) -> pd.Series:
    """Run an expression that :func:`check_expression` accepted; returns one value per row."""
    result = frame.eval(expr)
    if not isinstance(result, pd.Series):  # a constant such as "1" or "True"
        result = pd.Series([result] * len(frame), index=frame.index)
    return result


def condition_mask(expr: str, frame: pd.DataFrame) -> pd.Series:
    """A boolean row mask; missing results (NA) count as False."""
    return evaluate(expr, frame).fillna(False).astype(bool)


def check_syntax(expressions: Iterable[str]) -> None:
    """Config-time check: every expression parses (names are checked once columns are known)."""
    for expr in expressions:
        names_in(expr)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
