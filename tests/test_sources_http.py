"""The http source against a real HTTP server on 127.0.0.1 (no mocks)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError
from sources_helpers import ApiServer, Reply, Request, ctx, serve, spec

from apg.errors import SourceError
from apg.sources.paths import format_link_header

USERS = [{"user_id": i, "plan": {"tier": i % 3}, "score": i * 1.5} for i in range(1, 8)]
FAST = {"backoff": 0.01, "max_backoff": 0.05, "timeout": 2}


@pytest.fixture
def server() -> Iterator[ApiServer]:
    yield from serve()


def read(raw: dict, tmp_path: Path) -> pd.DataFrame:
    return spec({"kind": "http", **FAST, **raw}).read(ctx(tmp_path))


def read_error(raw: dict, tmp_path: Path) -> str:
    with pytest.raises(SourceError) as info:
        read(raw, tmp_path)
    return str(info.value)


def test_http_single_page_records_path_and_nested_columns(server: ApiServer, tmp_path: Path):
    url = server.route("/users", lambda r: Reply(body={"data": {"users": USERS[:3]}, "n": 3}))
    frame = read({"url": url, "records": "data.users"}, tmp_path)
    assert list(frame.columns) == ["user_id", "score", "plan.tier"]
    assert frame["user_id"].tolist() == [1, 2, 3]
    assert frame["plan.tier"].tolist() == [1, 2, 0]


def test_http_body_is_the_list_when_records_is_empty(server: ApiServer, tmp_path: Path):
    url = server.route("/list", lambda r: Reply(body=USERS))
    assert len(read({"url": url}, tmp_path)) == 7


def test_http_headers_and_params_reach_the_server(server: ApiServer, tmp_path: Path):
    def guarded(request: Request) -> Reply:
        if request.headers.get("authorization") != "Bearer s3cret-token":
            return Reply(401, {"error": "bad token"})
        return Reply(
            body={"items": [u for u in USERS if u["plan"]["tier"] == int(request.query["tier"])]}
        )

    url = server.route("/guarded", guarded)
    raw = {
        "url": url,
        "records": "items",
        "params": {"tier": 1},
        "headers": {"Authorization": "Bearer s3cret-token"},
    }
    assert read(raw, tmp_path)["user_id"].tolist() == [1, 4, 7]
    assert server.requests[-1].query == {"tier": "1"}


def test_http_401_shows_status_masked_url_and_body_start(server: ApiServer, tmp_path: Path):
    url = server.route("/guarded", lambda r: Reply(401, {"error": "invalid key s3cret-token"}))
    raw = {
        "url": url,
        "params": {"api_key": "s3cret-token", "tier": 2},
        "headers": {"X-Api-Key": "s3cret-token"},
    }
    message = read_error(raw, tmp_path)
    assert message == (
        f"source #1 (http): GET {server.base}/guarded?api_key=***&tier=2 answered HTTP 401 "
        'Unauthorized: \'{"error": "invalid key ***"}\'; check the credentials in `headers:`'
    )
    assert "s3cret" not in message


def test_http_404_names_url_and_body(server: ApiServer, tmp_path: Path):
    message = read_error({"url": server.url("/nope")}, tmp_path)
    assert message == (
        f"source #1 (http): GET {server.base}/nope answered HTTP 404 Not Found: "
        '\'{"error": "no such route"}\'; check the url and `params:`'
    )


def test_http_long_error_body_is_cut_at_200_chars(server: ApiServer, tmp_path: Path):
    url = server.route("/bad", lambda r: Reply(400, "x" * 500))
    message = read_error({"url": url}, tmp_path)
    assert f"answered HTTP 400 Bad Request: '{'x' * 200}' ...; check the url" in message


def test_http_next_url_pagination_follows_relative_urls(server: ApiServer, tmp_path: Path):
    def page(request: Request) -> Reply:
        n = int(request.query.get("p", "0"))
        nxt = f"/next?p={n + 1}&token=abc" if n < 2 else None
        return Reply(body={"results": USERS[n * 3 : n * 3 + 3], "links": {"next": nxt}})

    url = server.route("/next", page)
    raw = {
        "url": url,
        "records": "results",
        "pagination": {"style": "next_url", "next_url": "links.next"},
    }
    assert read(raw, tmp_path)["user_id"].tolist() == list(range(1, 8))
    assert [r.query.get("p") for r in server.requests] == [None, "1", "2"]


def test_http_link_header_pagination(server: ApiServer, tmp_path: Path):
    def page(request: Request) -> Reply:
        n = int(request.query.get("page", "1"))
        links = [(server.url(f"/linked?page={n + 1}"), "next")] if n < 3 else []
        links.append((server.url("/linked?page=1"), "first"))
        return Reply(body=USERS[(n - 1) * 3 : n * 3], headers={"Link": format_link_header(links)})

    url = server.route("/linked", page)
    frame = read({"url": url, "pagination": {"style": "link_header"}}, tmp_path)
    assert frame["user_id"].tolist() == list(range(1, 8))


def test_http_cursor_pagination_sends_cursor_param(server: ApiServer, tmp_path: Path):
    def page(request: Request) -> Reply:
        start = int(request.query.get("after", "0"))
        chunk = USERS[start : start + 2]
        more = start + 2 < len(USERS)
        return Reply(body={"data": chunk, "meta": {"next": str(start + 2) if more else None}})

    url = server.route("/cursor", page)
    raw = {
        "url": url,
        "records": "data",
        "params": {"limit": 2},
        "pagination": {"style": "cursor", "cursor": "meta.next", "cursor_param": "after"},
    }
    assert read(raw, tmp_path)["user_id"].tolist() == list(range(1, 8))
    assert [r.query for r in server.requests][:2] == [{"limit": "2"}, {"limit": "2", "after": "2"}]


def test_http_page_pagination_stops_on_empty_page(server: ApiServer, tmp_path: Path):
    def page(request: Request) -> Reply:
        n, size = int(request.query["page"]), int(request.query["per_page"])
        return Reply(body={"items": USERS[(n - 1) * size : n * size]})

    url = server.route("/paged", page)
    raw = {
        "url": url,
        "records": "items",
        "pagination": {"style": "page", "page_size": 3, "size_param": "per_page"},
    }
    assert read(raw, tmp_path)["user_id"].tolist() == list(range(1, 8))
    assert [r.query["page"] for r in server.requests] == ["1", "2", "3", "4"]


def test_http_offset_pagination_moves_by_page_size(server: ApiServer, tmp_path: Path):
    def page(request: Request) -> Reply:
        start, limit = int(request.query["skip"]), int(request.query["limit"])
        return Reply(body=USERS[start : start + limit])

    url = server.route("/offset", page)
    raw = {
        "url": url,
        "pagination": {
            "style": "offset",
            "offset_param": "skip",
            "page_size": 4,
            "size_param": "limit",
        },
    }
    assert read(raw, tmp_path)["user_id"].tolist() == list(range(1, 8))
    assert [r.query["skip"] for r in server.requests] == ["0", "4", "8"]


def test_http_max_pages_stops_endless_pagination(server: ApiServer, tmp_path: Path):
    url = server.route("/forever", lambda r: Reply(body={"d": USERS[:1], "next": "/forever"}))
    raw = {
        "url": url,
        "records": "d",
        "max_pages": 5,
        "pagination": {"style": "next_url", "next_url": "next"},
    }
    assert read_error(raw, tmp_path) == (
        f"source #1 (http): pagination did not end after max_pages=5 pages (last URL "
        f"{server.base}/forever); raise `max_pages:` or check the `pagination:` settings"
    )
    assert len(server.requests) == 5


def test_http_429_honours_retry_after_then_succeeds(server: ApiServer, tmp_path: Path):
    calls: list[float] = []

    def limited(request: Request) -> Reply:
        calls.append(time.monotonic())
        if len(calls) == 1:
            return Reply(429, {"error": "slow down"}, headers={"Retry-After": "0.2"})
        return Reply(body=USERS)

    url = server.route("/limited", limited)
    raw = {"url": url, "backoff": 0.001, "max_backoff": 1}
    assert len(read(raw, tmp_path)) == 7
    assert calls[1] - calls[0] >= 0.2


def test_http_retry_after_is_capped_by_max_backoff(server: ApiServer, tmp_path: Path):
    calls: list[float] = []

    def limited(request: Request) -> Reply:
        calls.append(time.monotonic())
        return (
            Reply(429, "wait", headers={"Retry-After": "3600"})
            if len(calls) == 1
            else Reply(body=USERS)
        )

    url = server.route("/limited", limited)
    start = time.monotonic()
    assert len(read({"url": url, "max_backoff": 0.05}, tmp_path)) == 7
    assert time.monotonic() - start < 2


def test_http_500_then_success_is_retried(server: ApiServer, tmp_path: Path):
    replies = iter([Reply(500, "boom"), Reply(503, "busy"), Reply(body=USERS)])
    url = server.route("/flaky", lambda r: next(replies))
    assert len(read({"url": url}, tmp_path)) == 7
    assert len(server.requests) == 3


def test_http_persistent_500_fails_after_all_retries(server: ApiServer, tmp_path: Path):
    url = server.route("/down", lambda r: Reply(500, "internal failure"))
    message = read_error({"url": url, "retries": 2}, tmp_path)
    assert message == (
        f"source #1 (http): GET {server.base}/down answered HTTP 500 Internal Server Error after "
        "3 attempt(s): 'internal failure'"
    )
    assert len(server.requests) == 3


def test_http_timeout_is_retried_then_reported(server: ApiServer, tmp_path: Path):
    url = server.route("/slow", lambda r: Reply(body=USERS, delay=0.6))
    message = read_error({"url": url, "timeout": 0.1, "retries": 1}, tmp_path)
    assert message == (
        f"source #1 (http): GET {server.base}/slow timed out after 0.1 s (2 attempt(s)); raise "
        "`timeout:` or check the server"
    )


def test_http_timeout_then_success(server: ApiServer, tmp_path: Path):
    replies = iter([Reply(body=USERS, delay=0.6), Reply(body=USERS)])
    url = server.route("/slow-once", lambda r: next(replies))
    assert len(read({"url": url, "timeout": 0.2, "retries": 1}, tmp_path)) == 7


def test_http_dropped_connection_is_not_called_a_timeout(server: ApiServer, tmp_path: Path):
    url = server.route("/hangup", lambda r: Reply(drop=True))
    message = read_error({"url": url, "retries": 1}, tmp_path)
    assert message == (
        f"source #1 (http): the connection to {url} was dropped before a complete answer: "
        "Server disconnected without sending a response. (2 attempt(s)); check the server's "
        "logs, or a proxy between apg and it"
    )
    assert len(server.requests) == 2


def test_http_unreachable_server_names_url(tmp_path: Path):
    with ApiServer() as gone:
        url = gone.url("/users")  # the port is closed once the server is gone
    message = read_error({"url": url + "?token=abc", "retries": 1}, tmp_path)
    assert message.startswith(f"source #1 (http): cannot reach {url}?token=*** ")
    assert message.endswith("(2 attempt(s)); check the url and that the server is up")


def test_http_malformed_json_names_page_and_body(server: ApiServer, tmp_path: Path):
    url = server.route("/broken", lambda r: Reply(body=b'{"data": [1, 2'))
    message = read_error({"url": url}, tmp_path)
    assert message.startswith(
        f"source #1 (http): page 1 ({server.base}/broken) is not valid JSON ("
    )
    assert message.endswith("the body starts '{\"data\": [1, 2'")


def test_http_missing_records_path_lists_top_level_keys(server: ApiServer, tmp_path: Path):
    url = server.route("/users", lambda r: Reply(body={"data": {"items": []}, "meta": {}}))
    message = read_error({"url": url, "records": "data.users"}, tmp_path)
    assert message == (
        f"source #1 (http): records path 'data.users' not found in page 1 ({server.base}/users): "
        "key 'users' not found under 'data'; keys there are 'items'; top-level keys are 'data', "
        "'meta'"
    )


def test_http_records_that_are_not_a_list(server: ApiServer, tmp_path: Path):
    url = server.route("/obj", lambda r: Reply(body={"data": {"a": 1}}))
    assert read_error({"url": url, "records": "data"}, tmp_path) == (
        "source #1 (http): records path 'data' in page 1 is an object with keys 'a', not a list "
        "of records; set `records:` to the dotted path of the list"
    )


def test_http_no_records_is_an_error(server: ApiServer, tmp_path: Path):
    url = server.route("/empty", lambda r: Reply(body={"items": []}))
    assert read_error({"url": url, "records": "items"}, tmp_path) == (
        f"source #1 (http): {url} returned no records"
    )


def test_http_pagination_config_errors():
    with pytest.raises(ValidationError, match="style 'cursor' needs `cursor:`"):
        spec({"kind": "http", "url": "http://x", "pagination": {"style": "cursor"}})
    with pytest.raises(ValidationError, match="style 'offset' needs `page_size:`"):
        spec({"kind": "http", "url": "http://x", "pagination": {"style": "offset"}})
    with pytest.raises(ValidationError, match="url must start with http:// or https://"):
        spec({"kind": "http", "url": "ftp://x"})
