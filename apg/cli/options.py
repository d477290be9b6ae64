"""Parsers for the text options of ``apg run``: column lists, ``--k``, ``--algorithms`` and
``--sep``. Every mistake is a :class:`ConfigError` that quotes the option and the value exactly
as typed (``' '``, never a cleaned-up ``''``), so the CLI prints one ``error:`` line.

Column lists (``--behavioral``, ``--attitudinal``, ``--demographic``, ``--outcome``, and the
missing-value markers of ``--na-values``) come in two forms:

* ``a,b,c``: names separated by commas, each trimmed of surrounding spaces. A name written in
  double quotes is taken verbatim: ``"Spend, EUR"`` keeps its comma, ``" x "`` its spaces; a
  quote inside quotes is doubled (``"5"" screen"``). A quote only opens at the start of a name;
  elsewhere it is an ordinary character (``size"inch``).
* ``@FILE``: one name a line, trimmed; blank lines and lines starting with ``#`` are skipped;
  commas are ordinary characters. The same double quotes keep a name's surrounding spaces or a
  leading ``#`` or ``"``.

Every name must be non-empty; :func:`quote_name` writes any name so that both forms read it
back unchanged (a name with a line break only in the comma form).
"""

from __future__ import annotations

import re
from pathlib import Path

from apg.errors import ConfigError

ALGORITHMS = ("kmeans", "agglomerative", "dbscan")
# Largest k --k accepts: past a few dozen clusters the groups are no longer personas, and a
# typo such as 3-800 should not start hours of fitting.
MAX_K = 100
QUOTE = '"'
# Shells and users write a tab as backslash-t or the word; anything else is taken literally.
SEP_ALIASES = {"\\t": "\t", "tab": "\t"}


def parse_names(value: str, option: str, noun: str = "column name") -> list[str]:
    """The names of a column-list option: ``a,b`` or ``@FILE`` (see the module docs)."""
    if value.strip().startswith("@"):
        return read_names_file(value, option, noun)
    if not value.strip():
        raise ConfigError(
            f"{option} {value!r}: no {noun}s given; list them comma-separated, or give @FILE "
            "with one a line"
        )
    names = []
    for position, (raw, name) in enumerate(_split(value, option, noun), start=1):
        names.append(_checked(name, raw, f"{option} {value!r}: {noun} {position}", noun))
    return names


def quote_name(name: str) -> str:
    """``name`` as written in a list: as is when that reads back unchanged, else in quotes."""
    plain = (
        name
        and name == name.strip()
        and "," not in name
        and "\n" not in name
        and "\r" not in name
        and not name.startswith((QUOTE, "#", "@"))
    )
    return name if plain else QUOTE + name.replace(QUOTE, QUOTE * 2) + QUOTE


def read_names_file(value: str, option: str, noun: str = "column name") -> list[str]:
    """The names listed in the file of ``@FILE``: one a line, ``#`` comments, blank lines."""
    where = f"{option} {value!r}"
    text_path = value.strip()[1:]
    if not text_path.strip():
        raise ConfigError(f"{where}: no file name after @; write @FILE, e.g. @columns.txt")
    hint = f'; a {noun} that starts with @ goes in double quotes: "@name"'
    try:
        data = Path(text_path).expanduser().read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{where}: file {text_path!r} does not exist{hint}") from None
    except IsADirectoryError:
        raise ConfigError(f"{where}: {text_path!r} is a folder, not a file of names") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {text_path!r}: {exc.strerror or exc}") from None
    except (ValueError, RuntimeError) as exc:  # a NUL in the path; ~user without a home
        raise ConfigError(f"{where}: cannot read {text_path!r}: {exc}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{where}: {text_path!r} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from None
    names = []
    for number, line in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        at = f"{where}: {text_path} line {number}"
        if stripped.startswith(QUOTE):
            name, end = _quoted(line, line.index(QUOTE), f"{at} {line!r}", noun, in_list=False)
            if line[end:].strip():
                raise ConfigError(
                    f"{at} {line!r}: text after the closing quote; inside quotes write a quote "
                    'as ""'
                )
        else:
            name = stripped
        names.append(_checked(name, line, at, noun))
    if not names:
        raise ConfigError(
            f"{where}: {text_path!r} lists no {noun}s (only blank lines and # comments); "
            "write one a line"
        )
    return names


def _split(value: str, option: str, noun: str) -> list[tuple[str, str]]:
    """``(raw text, name)`` of each comma-separated item; raw is the item exactly as typed."""
    items: list[tuple[str, str]] = []
    i, n = 0, len(value)
    while True:
        start = i
        j = i
        while j < n and value[j].isspace():
            j += 1
        if j < n and value[j] == QUOTE:
            where = f"{option} {value!r}: {noun} {len(items) + 1}"
            name, k = _quoted(value, j, where, noun, in_list=True)
            while k < n and value[k].isspace():
                k += 1
            if k < n and value[k] != ",":
                comma = value.find(",", k)
                raw = value[start : n if comma < 0 else comma]
                raise ConfigError(
                    f"{where} ({raw!r}) has text after its closing quote; inside quotes write "
                    'a quote as ""'
                )
            items.append((value[start:k], name))
            i = k
        else:
            comma = value.find(",", i)
            i = n if comma < 0 else comma
            raw = value[start:i]
            items.append((raw, raw.strip()))
        if i >= n:
            return items
        i += 1  # the comma


def _quoted(text: str, at: int, where: str, noun: str, *, in_list: bool) -> tuple[str, int]:
    """The quoted name opening at ``text[at]`` and the position after its closing quote."""
    out = []
    k = at + 1
    while k < len(text):
        if text[k] == QUOTE:
            if text[k + 1 : k + 2] == QUOTE:
                out.append(QUOTE)
                k += 2
                continue
            return "".join(out), k + 1
        out.append(text[k])
        k += 1
    fix = "close it" + (f", or list the {noun}s in a file: @FILE" if in_list else "")
    raise ConfigError(f"{where} opens a double quote that is never closed; {fix}")


def _checked(name: str, raw: str, where: str, noun: str) -> str:
    """``name`` unless it is empty; the error quotes ``raw``, the text as typed."""
    if name:
        return name
    if raw.strip() == QUOTE * 2:
        raise ConfigError(f"{where} is empty ({raw!r}); remove it")
    if raw:
        raise ConfigError(
            f"{where} is blank ({raw!r}); remove it (a {noun} made of spaces goes in double "
            'quotes: " ")'
        )
    raise ConfigError(f"{where} is empty ({raw!r}); remove the extra comma")


_K = re.compile(r"\s*([0-9]+)\s*(?:-\s*([0-9]+)\s*)?")


def parse_k(value: str) -> tuple[int, int]:
    """``--k 5`` or ``--k 3-8``: the inclusive (min, max) number of clusters to try."""
    match = _K.fullmatch(value)
    if match is None:
        raise ConfigError(
            f"--k {value!r}: give a number of clusters (5) or a range MIN-MAX (3-8) in digits"
        )
    lo = _number(match[1])
    hi = _number(match[2]) if match[2] is not None else lo
    if min(lo, hi) < 2:
        raise ConfigError(f"--k {value!r}: every k must be at least 2 (two personas)")
    if hi < lo:
        raise ConfigError(f"--k {value!r}: the range runs backwards; write MIN-MAX, e.g. {hi}-{lo}")
    if hi > MAX_K:
        raise ConfigError(f"--k {value!r}: k is at most {MAX_K}")
    return lo, hi


def _number(digits: str) -> int:
    # Python refuses to convert thousands of digits; any such number is over the limit anyway.
    return int(digits) if len(digits.lstrip("0")) <= 6 else MAX_K + 1


def parse_algorithms(value: str) -> list[str]:
    """``--algorithms kmeans,agglomerative``: the algorithms to keep, in the order given."""
    choices = ", ".join(ALGORITHMS)
    chosen: list[str] = []
    for position, raw in enumerate(value.split(","), start=1):
        name = raw.strip().lower()
        if not name:
            why = "is empty" if not raw else "is blank"
            raise ConfigError(
                f"--algorithms {value!r}: name {position} {why} ({raw!r}); give some of "
                f"{choices}, comma-separated"
            )
        if name not in ALGORITHMS:
            raise ConfigError(
                f"--algorithms {value!r}: unknown algorithm {raw.strip()!r}; choose from {choices}"
            )
        if name not in chosen:
            chosen.append(name)
    return chosen


def parse_sep(value: str) -> str:
    """``--sep``: the separator text, with ``\\t`` or ``tab`` meaning a tab."""
    if value == "":
        raise ConfigError(
            "--sep '': give the field separator, e.g. --sep ';' or --sep '\\t', or leave --sep "
            "out to detect it"
        )
    return SEP_ALIASES.get(value, value)
