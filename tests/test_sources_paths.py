"""Parsers: dotted record paths, the Link header, expressions and secret masking.

Property-based (hypothesis) where the input space is large: any key, any URL, any name.
"""

from __future__ import annotations

import keyword
import string

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apg.sources.expressions import ExpressionError, check_expression, names_in
from apg.sources.masking import mask_headers, mask_secrets, mask_tree
from apg.sources.paths import (
    PathError,
    find_path,
    format_link_header,
    get_path,
    join_path,
    parse_link_header,
    split_path,
)

keys = st.text(min_size=1, max_size=12)
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5))
json_values = st.recursive(
    json_leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=20,
)


@given(st.lists(keys, min_size=1, max_size=6))
def test_paths_split_inverts_join(parts: list[str]):
    assert split_path(join_path(parts)) == parts


@given(st.lists(keys, min_size=1, max_size=5), json_values)
def test_paths_get_follows_nested_objects(parts: list[str], leaf: object):
    body: object = leaf
    for key in reversed(parts):
        body = {key: body}
    assert get_path(body, join_path(parts)) == leaf


@given(json_values, st.lists(keys, min_size=1, max_size=4))
def test_paths_get_either_finds_a_value_or_raises_path_error(body: object, parts: list[str]):
    try:
        get_path(body, join_path(parts))
    except PathError as exc:
        assert str(exc)  # never an empty message, never another exception type
        assert find_path(body, join_path(parts)) is None


@given(st.dictionaries(keys, json_leaf, min_size=1, max_size=5), keys)
def test_paths_missing_key_lists_the_keys_found(body: dict, key: str):
    if key in body:
        return
    with pytest.raises(PathError) as info:
        get_path(body, join_path([key]))
    assert str(info.value).startswith(f"key {key!r} not found at the top level; keys there are ")
    for existing in list(body)[:12]:
        assert repr(existing) in str(info.value)


def test_paths_examples():
    body = {"data": {"users": [{"id": 1}, {"id": 2}]}, "meta": {"next.url": "/p2"}}
    assert get_path(body, "data.users.1.id") == 2
    assert get_path(body, "meta.next\\.url") == "/p2"
    assert get_path(body, "") is body
    with pytest.raises(PathError, match=r"^index 5 is out of range under 'data.users': the list"):
        get_path(body, "data.users.5")
    with pytest.raises(PathError, match=r"^cannot take 'x' under 'data.users.0.id': the value"):
        get_path(body, "data.users.0.id.x")
    with pytest.raises(PathError, match="has an empty segment"):
        split_path("data..users")
    with pytest.raises(PathError, match="a backslash must be followed by"):
        split_path("data\\x")


uris = st.text(
    alphabet=string.ascii_letters + string.digits + "/:?&=%-._~+,;", min_size=1, max_size=40
)
rels = st.text(alphabet=string.ascii_lowercase + "-", min_size=1, max_size=8)


@given(st.lists(st.tuples(uris, rels), max_size=6))
def test_paths_link_header_round_trips(links: list[tuple[str, str]]):
    expected: dict[str, str] = {}
    for uri, rel in links:
        expected.setdefault(rel, uri)
    assert parse_link_header(format_link_header(links)) == expected


@given(st.text(max_size=80))
def test_paths_link_header_never_raises(value: str):
    assert isinstance(parse_link_header(value), dict)


def test_paths_link_header_examples():
    header = (
        '<https://api.x/u?page=2>; rel="next", <https://api.x/u?page=9>; rel="last", '
        '<https://api.x/u?p=1>; title="a, b; c"; rel="prev first"'
    )
    assert parse_link_header(header) == {
        "next": "https://api.x/u?page=2",
        "last": "https://api.x/u?page=9",
        "prev": "https://api.x/u?p=1",
        "first": "https://api.x/u?p=1",
    }
    assert parse_link_header("<https://a/2>;rel=next") == {"next": "https://a/2"}
    assert parse_link_header("garbage, <https://a/3>; rel=NEXT") == {"next": "https://a/3"}
    assert parse_link_header("") == {}


SAMPLE = pd.DataFrame({"qty": [1], "price": [2.0], "kind": ["a"], "unit price": [3.0]}).iloc[:0]
identifiers = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda s: (
        s not in {"qty", "price", "kind"}
        and not keyword.iskeyword(s)
        and not keyword.issoftkeyword(s)
    )
)


@given(identifiers)
@settings(max_examples=60)
def test_paths_unknown_name_is_reported_with_columns(name: str):
    with pytest.raises(ExpressionError) as info:
        check_expression(f"qty > 0 and {name} > 1", SAMPLE, condition=True)
    assert str(info.value) == (
        f"'qty > 0 and {name} > 1' uses unknown column(s) '{name}'; columns are 'qty', 'price', "
        "'kind', 'unit price' (quote names with spaces in backticks)"
    )


@given(st.text(alphabet="()+*<>=!&|'\" ", min_size=1, max_size=10))
def test_paths_bad_expressions_raise_expression_error_only(expr: str):
    try:
        check_expression(expr, SAMPLE, condition=False)
    except ExpressionError as exc:
        assert repr(expr) in str(exc) or "empty" in str(exc)


def test_paths_expression_names_ignore_functions_attributes_and_backticks():
    assert names_in("abs(qty) > 1 and kind.str.len() > 0") == {"qty", "kind"}
    assert names_in("`unit price` * qty") == {"unit price", "qty"}
    result = check_expression("`unit price` * qty", SAMPLE, condition=False)
    assert result.dtype == "float64"
    with pytest.raises(ExpressionError, match="unbalanced backtick"):
        names_in("`unit price * qty")


def test_masking_urls_params_and_headers():
    assert mask_secrets("postgresql+psycopg://app:s3cr3t@db:5432/x") == (
        "postgresql+psycopg://app:***@db:5432/x"
    )
    assert mask_secrets("GET https://api.x/u?api_key=abc&page=2&access_token=t") == (
        "GET https://api.x/u?api_key=***&page=2&access_token=***"
    )
    assert mask_secrets("header Authorization: Bearer abc.def") == "header Authorization: ***"
    assert (
        mask_secrets("features.tokens_used: sum: unknown") == "features.tokens_used: sum: unknown"
    )
    assert mask_secrets("driver said hunter2222 twice", ["hunter2222"]) == "driver said *** twice"
    assert mask_headers({"Authorization": "Bearer x", "X-Api-Key": "k", "Accept": "json"}) == {
        "Authorization": "***",
        "X-Api-Key": "***",
        "Accept": "json",
    }
    tree = {"sources": [{"url": "mysql://u:pw@h/db", "headers": {"X-Token": "abc"}}], "k": 2}
    assert mask_tree(tree) == {
        "sources": [{"url": "mysql://u:***@h/db", "headers": {"X-Token": "***"}}],
        "k": 2,
    }
