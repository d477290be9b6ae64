"""Text tables: separator detection, the "wrong separator" error, and numbering rows as ids."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from apg.errors import SourceError
from apg.sources.base import SourceContext
from apg.sources.file import SNIFF_BYTES, FileSource, Separator, detect_separator

SEPS = [",", ";", "\t", "|"]
CTX = SourceContext(base_dir=Path("."), id_column="user_id", position=1)


def table(sample_users: pd.DataFrame, sep: str, rows: int = 60) -> pd.DataFrame:
    """Sample users with a text column holding every other separator inside quoted fields,
    and numbers with a decimal point."""
    others = "".join(s for s in SEPS if s != sep)
    users = sample_users.head(rows).copy()
    users["note"] = [f"n{i}{others}x" if i % 2 else f"plain {i}" for i in range(rows)]
    return users


@pytest.mark.parametrize("sep", SEPS, ids=["comma", "semicolon", "tab", "pipe"])
@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".txt"])
def test_detect_separator_finds_each_separator(
    tmp_path: Path, sample_users: pd.DataFrame, sep: str, suffix: str
) -> None:
    users = table(sample_users, sep)
    path = tmp_path / f"u{suffix}"
    users.to_csv(path, sep=sep, index=False)
    default = "\t" if suffix == ".tsv" else ","
    found = detect_separator(path, default)
    assert found == Separator(sep, True, len(users.columns))
    read = pd.read_csv(path, sep=found.sep, dtype={"user_id": str})
    pd.testing.assert_frame_equal(read, users)


@pytest.mark.parametrize("sep", SEPS, ids=["comma", "semicolon", "tab", "pipe"])
def test_detect_separator_quoted_header_and_fields_with_other_separators(
    tmp_path: Path, sep: str
) -> None:
    """Every line, header included, has a quoted field holding the other separators: split
    on one of them, each line has as many fields too, but the quotes are broken open."""
    others = "".join(s for s in SEPS if s != sep)
    lines = [sep.join(["id", f'"Spend{others}EUR"'])]
    lines += [sep.join([str(i), f'"{i}{others}5"']) for i in range(20)]
    path = tmp_path / "u.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert detect_separator(path) == Separator(sep, True, 2)
    frame = pd.read_csv(path, sep=sep)
    assert list(frame.columns) == ["id", f"Spend{others}EUR"]


def test_detect_separator_semicolon_with_decimal_commas(tmp_path: Path) -> None:
    path = tmp_path / "eu.csv"
    path.write_text("id;spend;visits\n1;1,5;3\n2;12,75;4\n3;0,5;1\n", encoding="utf-8")
    assert detect_separator(path) == Separator(";", True, 3)


def test_detect_separator_ties_go_to_the_default(tmp_path: Path) -> None:
    path = tmp_path / "u.txt"
    path.write_text("a;b,c\n1;2,3\n", encoding="utf-8")  # both split every line in two
    assert detect_separator(path, ",") == Separator(",", True, 2)
    assert detect_separator(path, "\t") == Separator(",", True, 2)  # then the order
    path.write_text("a;b;c,d\n1;2;3,4\n", encoding="utf-8")
    assert detect_separator(path, ",") == Separator(";", True, 3)  # more fields win


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"single\n1\n2\n",
        b"a;b\n1;2;3\n4\n",  # ragged
        b"\xff\xfe\x00\x01garbage\x00",
        b'a,b\n"unclosed,1\n',
    ],
    ids=["empty", "one column", "ragged", "binary", "unclosed quote"],
)
def test_detect_separator_falls_back_to_the_default(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "u.csv"
    path.write_bytes(content)
    assert detect_separator(path, ",") == Separator(",", False)
    assert detect_separator(tmp_path / "missing.csv", ";") == Separator(";", False)


def test_detect_separator_reads_only_the_start_of_a_big_file(tmp_path: Path) -> None:
    """The sample ends mid-line (and mid-quote); later lines never count."""
    row = '1;"a long, quoted; text";3\n'
    body = "id;text;n\n" + row * (SNIFF_BYTES // len(row) + 5)
    path = tmp_path / "big.csv"
    path.write_text(body + "ragged\n", encoding="utf-8")
    assert len(body) > SNIFF_BYTES
    assert detect_separator(path) == Separator(";", True, 3)


def test_detect_separator_skips_a_byte_order_mark_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffid;name\r\n1;Zoë\r\n2;Ana\r\n".encode())
    assert detect_separator(path) == Separator(";", True, 2)


# --------------------------------------------------------------------------- wrong separator


def test_file_read_as_one_column_names_the_likely_separator(
    tmp_path: Path, sample_users: pd.DataFrame
) -> None:
    path = tmp_path / "u.csv"
    sample_users.head(20)[["user_id", "nps", "age"]].to_csv(path, sep=";", index=False)
    with pytest.raises(SourceError) as err:
        FileSource(path=str(path)).read(CTX)
    assert str(err.value) == (
        f"source #1 (file {path}): '{path}' reads as a single column ('user_id;nps;age') when "
        "split on ',', but its header contains ';': pass --sep ';' (apg run --data, apg assign) "
        'or set this source\'s `options: {sep: ";"}`'
    )


def test_file_read_as_one_column_tab_separator_hint(tmp_path: Path) -> None:
    path = tmp_path / "u.csv"
    path.write_text("user_id\tnps\n1\t5\n2\t7\n", encoding="utf-8")
    with pytest.raises(SourceError) as err:
        FileSource(path=str(path), options={"sep": "|"}).read(CTX)
    assert str(err.value).endswith(
        "when split on '|', but its header contains '\\t': pass --sep '\\t' (apg run --data, "
        'apg assign) or set this source\'s `options: {sep: "\\t"}`'
    )


def test_file_with_one_real_column_is_read(tmp_path: Path) -> None:
    path = tmp_path / "u.csv"
    path.write_text("user_id\n1\n2\n", encoding="utf-8")
    assert list(FileSource(path=str(path)).read(CTX).columns) == ["user_id"]


def test_file_with_ragged_fields_names_the_likely_separator(tmp_path: Path) -> None:
    """Decimal commas under the wrong separator: pandas fails on a line; the error says why."""
    path = tmp_path / "eu.csv"
    path.write_text("user_id;spend\n1;3\n2;1,5\n", encoding="utf-8")
    with pytest.raises(SourceError) as err:
        FileSource(path=str(path)).read(CTX)
    assert str(err.value) == (
        f"source #1 (file {path}): cannot read '{path}' as csv: Error tokenizing data. C error: "
        "Expected 1 fields in line 3, saw 2; its lines split evenly on ';': pass --sep ';' "
        '(apg run --data, apg assign) or set this source\'s `options: {sep: ";"}`'
    )


# --------------------------------------------------------------------------- row numbers


def test_row_id_numbers_rows_from_one(tmp_path: Path) -> None:
    path = tmp_path / "u.csv"
    path.write_text("nps,age\n5,30\n7,41\n9,22\n", encoding="utf-8")
    ctx = SourceContext(base_dir=tmp_path, id_column="row", position=1)
    spec = FileSource(path="u.csv", row_id="row")
    frame = spec.finish(spec.read(ctx), ctx)
    expected = pd.DataFrame({"row": [1, 2, 3], "nps": [5, 7, 9], "age": [30, 41, 22]})
    pd.testing.assert_frame_equal(frame, expected)


def test_row_id_runs_on_across_the_files_of_a_glob(tmp_path: Path) -> None:
    (tmp_path / "b.csv").write_text("nps\n3\n4\n", encoding="utf-8")
    (tmp_path / "a.csv").write_text("nps\n1\n2\n", encoding="utf-8")
    ctx = SourceContext(base_dir=tmp_path, id_column="row", position=1)
    frame = FileSource(path="*.csv", row_id="row").read(ctx)
    assert frame.to_dict("list") == {"row": [1, 2, 3, 4], "nps": [1, 2, 3, 4]}


def test_row_id_refuses_an_existing_column(tmp_path: Path) -> None:
    (tmp_path / "u.csv").write_text("row,nps\n1,3\n", encoding="utf-8")
    ctx = SourceContext(base_dir=tmp_path, id_column="row", position=1)
    with pytest.raises(SourceError) as err:
        FileSource(path="u.csv", row_id="row").read(ctx)
    assert str(err.value) == (
        "source #1 (file u.csv): the table already has a column 'row', so rows cannot be "
        "numbered into it; if it identifies the users, make it the id (apg run --id row), else "
        "give `row_id:` another name"
    )
