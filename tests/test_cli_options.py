"""The parsers behind ``apg run``'s text options: column lists (comma form and @FILE), --k,
--algorithms and --sep. Errors quote the value exactly as typed."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from apg.cli.options import (
    MAX_K,
    parse_algorithms,
    parse_k,
    parse_names,
    parse_sep,
    quote_name,
)
from apg.errors import ApgError, ConfigError

# Column names as tables have them: any text but an empty one. Surrogates cannot be written
# to a UTF-8 file, so they are left out.
NAMES = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=20)
# A name in a file cannot span lines.
LINE_NAMES = NAMES.filter(lambda n: "\n" not in n and "\r" not in n)
# Names that need no quotes: trimmed, no comma, not opening with a quote, # or @.
PLAIN = NAMES.filter(lambda n: quote_name(n) == n)


# --------------------------------------------------------------------------- comma form


@pytest.mark.parametrize(
    ("value", "names"),
    [
        ("a,b,c", ["a", "b", "c"]),
        ("a, b , c", ["a", "b", "c"]),
        ('"Spend, EUR",visits', ["Spend, EUR", "visits"]),
        ('a, "x,y" , "q""r"', ["a", "x,y", 'q"r']),
        ('" padded ",b', [" padded ", "b"]),
        ('size"inch,b', ['size"inch', "b"]),
        ('"@handle"', ["@handle"]),
        ("#visits", ["#visits"]),
        ('"   "', ["   "]),
    ],
)
def test_parse_names_comma_form(value: str, names: list[str]) -> None:
    assert parse_names(value, "--behavioral") == names


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("a,,b", "--behavioral 'a,,b': column name 2 is empty (''); remove the extra comma"),
        (
            "a, ",
            "--behavioral 'a, ': column name 2 is blank (' '); remove it (a column name made "
            'of spaces goes in double quotes: " ")',
        ),
        ("a,b,", "--behavioral 'a,b,': column name 3 is empty (''); remove the extra comma"),
        (",a", "--behavioral ',a': column name 1 is empty (''); remove the extra comma"),
        (
            "",
            "--behavioral '': no column names given; list them comma-separated, or give @FILE "
            "with one a line",
        ),
        (
            " ",
            "--behavioral ' ': no column names given; list them comma-separated, or give @FILE "
            "with one a line",
        ),
        ('a,"",b', "--behavioral 'a,\"\",b': column name 2 is empty ('\"\"'); remove it"),
        (
            'a,"b',
            "--behavioral 'a,\"b': column name 2 opens a double quote that is never closed; "
            "close it, or list the column names in a file: @FILE",
        ),
        (
            '"a"b,c',
            "--behavioral '\"a\"b,c': column name 1 ('\"a\"b') has text after its closing "
            'quote; inside quotes write a quote as ""',
        ),
    ],
)
def test_parse_names_errors_quote_the_value_as_typed(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_names(value, "--behavioral")
    assert str(err.value) == message


@given(st.lists(NAMES, min_size=1, max_size=6))
@example([" a", "b,c", '"q"', "@x", "#y", "a\nb"])
def test_parse_names_comma_form_round_trips_quoted_names(names: list[str]) -> None:
    value = ",".join(quote_name(n) for n in names)
    assert parse_names(value, "--behavioral") == names


@given(st.lists(PLAIN, min_size=1, max_size=6), st.sampled_from([",", ", ", " , "]))
def test_parse_names_comma_form_reads_plain_names_as_written(names: list[str], sep: str) -> None:
    assert parse_names(sep.join(names), "--demographic") == names


@given(st.text(max_size=40))
@example("a,,b")
@example('"')
@example("@")
@example("@\x00")
@example('a,"b""')
def test_parse_names_any_text_gives_names_or_an_apg_error(value: str) -> None:
    try:
        names = parse_names(value, "--behavioral")
    except ApgError as exc:
        assert str(exc).startswith(f"--behavioral {value!r}: ")
    else:
        assert names and all(isinstance(n, str) and n for n in names)


# --------------------------------------------------------------------------- @FILE form


def test_parse_names_from_file_skips_blanks_and_comments(tmp_path: Path) -> None:
    (tmp_path / "cols.txt").write_text(
        "# behavioral columns\nSpend, EUR\n\n   \n  visits  \n"
        '  # indented comment\n"# of orders"\n" padded "\n"say ""hi"""\r\nlast',
        encoding="utf-8",
    )
    assert parse_names("@cols.txt", "--behavioral") == [
        "Spend, EUR",
        "visits",
        "# of orders",
        " padded ",
        'say "hi"',
        "last",
    ]


@pytest.mark.parametrize(
    ("content", "value", "message"),
    [
        (
            None,
            "@nope.txt",
            "--behavioral '@nope.txt': file 'nope.txt' does not exist; a column name that starts "
            'with @ goes in double quotes: "@name"',
        ),
        (
            "# only a comment\n\n",
            "@cols.txt",
            "--behavioral '@cols.txt': 'cols.txt' lists no column names (only blank lines and "
            "# comments); write one a line",
        ),
        (
            'a\n  "open\n',
            "@cols.txt",
            "--behavioral '@cols.txt': cols.txt line 2 '  \"open' opens a double quote that is "
            "never closed; close it",
        ),
        (
            'a\n"x" y\n',
            "@cols.txt",
            "--behavioral '@cols.txt': cols.txt line 2 '\"x\" y': text after the closing quote; "
            'inside quotes write a quote as ""',
        ),
        (
            'a\n""\n',
            "@cols.txt",
            "--behavioral '@cols.txt': cols.txt line 2 is empty ('\"\"'); remove it",
        ),
        ("a", "@", "--behavioral '@': no file name after @; write @FILE, e.g. @columns.txt"),
    ],
    ids=["missing", "no names", "unclosed", "after quote", "empty quoted", "bare @"],
)
def test_parse_names_file_errors(
    tmp_path: Path, content: str | None, value: str, message: str
) -> None:
    if content is not None:
        (tmp_path / "cols.txt").write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        parse_names(value, "--behavioral")
    assert str(err.value) == message


def test_parse_names_file_not_utf8_or_folder(tmp_path: Path) -> None:
    (tmp_path / "cols.txt").write_bytes(b"a\n\xff\n")
    (tmp_path / "dir").mkdir()
    with pytest.raises(ConfigError) as err:
        parse_names("@cols.txt", "--outcome")
    assert str(err.value) == (
        "--outcome '@cols.txt': 'cols.txt' is not UTF-8 text (byte 2); save it as UTF-8"
    )
    with pytest.raises(ConfigError) as err:
        parse_names("@dir", "--outcome")
    assert str(err.value) == "--outcome '@dir': 'dir' is a folder, not a file of names"


def _names_file(lines: list[str], newline: str) -> str:
    folder = Path(tempfile.mkdtemp(dir="."))
    path = folder / "cols.txt"
    path.write_bytes(newline.join(lines).encode("utf-8"))
    return "@" + str(path)


@given(
    st.lists(LINE_NAMES, min_size=1, max_size=8),
    st.sampled_from(["\n", "\r\n"]),
    st.booleans(),
)
def test_parse_names_file_round_trips_any_names(
    names: list[str], newline: str, commented: bool
) -> None:
    """Any names, one a line (in quotes when quote_name says so), between comments and
    blank lines, read back unchanged."""
    lines = [quote_name(n) for n in names]
    if commented:
        lines = ["# columns", "", *[x for line in lines for x in (line, "  ")], "#end"]
    assert parse_names(_names_file(lines, newline), "--behavioral") == names


@given(st.lists(PLAIN, min_size=1, max_size=8))
def test_parse_names_file_reads_plain_names_verbatim(names: list[str]) -> None:
    assert [quote_name(n) for n in names] == names
    assert parse_names(_names_file(names, "\n"), "--behavioral") == names


@given(st.binary(max_size=60))
@example(b"\xef\xbb\xbfa\nb")
@example(b'"\n')
def test_parse_names_any_file_gives_names_or_an_apg_error(content: bytes) -> None:
    folder = Path(tempfile.mkdtemp(dir="."))
    (folder / "c.txt").write_bytes(content)
    try:
        names = parse_names(f"@{folder}/c.txt", "--behavioral")
    except ApgError:
        pass
    else:
        assert names and all(n and "\n" not in n for n in names)


# --------------------------------------------------------------------------- --k, --algorithms


@pytest.mark.parametrize(
    ("value", "k"), [("3-8", (3, 8)), ("5", (5, 5)), ("2-2", (2, 2)), (" 3 - 4 ", (3, 4))]
)
def test_parse_k(value: str, k: tuple[int, int]) -> None:
    assert parse_k(value) == k


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("8-3", "--k '8-3': the range runs backwards; write MIN-MAX, e.g. 3-8"),
        ("1-4", "--k '1-4': every k must be at least 2 (two personas)"),
        ("1", "--k '1': every k must be at least 2 (two personas)"),
        ("abc", "--k 'abc': give a number of clusters (5) or a range MIN-MAX (3-8) in digits"),
        ("3-", "--k '3-': give a number of clusters (5) or a range MIN-MAX (3-8) in digits"),
        ("3..8", "--k '3..8': give a number of clusters (5) or a range MIN-MAX (3-8) in digits"),
        ("", "--k '': give a number of clusters (5) or a range MIN-MAX (3-8) in digits"),
        (" ", "--k ' ': give a number of clusters (5) or a range MIN-MAX (3-8) in digits"),
        ("2-500", f"--k '2-500': k is at most {MAX_K}"),
    ],
)
def test_parse_k_errors_quote_the_value(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_k(value)
    assert str(err.value) == message


@given(st.text(max_size=12) | st.from_regex(r"\s*[0-9]{1,30}\s*(-\s*[0-9]{1,30})?\s*"))
def test_parse_k_any_text_gives_a_range_or_an_apg_error(value: str) -> None:
    try:
        lo, hi = parse_k(value)
    except ApgError as exc:
        assert str(exc).startswith(f"--k {value!r}: ")
    else:
        assert 2 <= lo <= hi <= MAX_K


def test_parse_algorithms() -> None:
    assert parse_algorithms("kmeans,agglomerative") == ["kmeans", "agglomerative"]
    assert parse_algorithms(" dbscan , KMeans,dbscan") == ["dbscan", "kmeans"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "kmeans,hdbscan",
            "--algorithms 'kmeans,hdbscan': unknown algorithm 'hdbscan'; choose from kmeans, "
            "agglomerative, dbscan",
        ),
        (
            "kmeans, ",
            "--algorithms 'kmeans, ': name 2 is blank (' '); give some of kmeans, "
            "agglomerative, dbscan, comma-separated",
        ),
        (
            "",
            "--algorithms '': name 1 is empty (''); give some of kmeans, agglomerative, "
            "dbscan, comma-separated",
        ),
    ],
)
def test_parse_algorithms_errors_quote_the_value(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_algorithms(value)
    assert str(err.value) == message


@given(st.text(max_size=30))
def test_parse_algorithms_any_text_gives_names_or_an_apg_error(value: str) -> None:
    try:
        names = parse_algorithms(value)
    except ApgError as exc:
        assert str(exc).startswith(f"--algorithms {value!r}: ")
    else:
        assert names and set(names) <= {"kmeans", "agglomerative", "dbscan"}


def test_parse_sep() -> None:
    assert parse_sep(";") == ";"
    assert parse_sep("\\t") == parse_sep("tab") == parse_sep("\t") == "\t"
    assert parse_sep("\\x") == "\\x"  # taken literally, never a decoding error
    with pytest.raises(ConfigError) as err:
        parse_sep("")
    assert str(err.value) == (
        "--sep '': give the field separator, e.g. --sep ';' or --sep '\\t', or leave --sep out "
        "to detect it"
    )
