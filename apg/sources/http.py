"""JSON HTTP APIs read with httpx: GET, follow the pages, collect the records.

Retries are ours (not httpx's) so that every attempt is bounded by ``retries``, waits grow
exponentially from ``backoff`` and a server's ``Retry-After`` is honoured up to
``max_backoff``. Connection errors, timeouts, 429 and 5xx are retried; any other 4xx is the
caller's mistake and fails at once with the status, the URL (secrets masked) and the start of
the body.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Iterator
from typing import Any, Literal
from urllib.parse import urljoin

import httpx
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from apg.errors import listing
from apg.sources.base import SourceContext, SourceSpec
from apg.sources.masking import is_secret_name, mask_secrets
from apg.sources.paths import PathError, find_path, get_path, parse_link_header, split_path

Scalar = str | int | float | bool


class Pagination(BaseModel):
    """How to reach the next page; ``style`` picks which of the other keys apply."""

    model_config = ConfigDict(extra="forbid")

    style: Literal["next_url", "link_header", "cursor", "page", "offset"]
    # next_url: dotted path to the next page's URL in the body (absent or null on the last page)
    next_url: str | None = None
    # cursor: dotted path to the next cursor in the body, sent back as `cursor_param`
    cursor: str | None = None
    cursor_param: str = "cursor"
    # page / offset: the counter's parameter name, its first value and the page size
    page_param: str = "page"
    offset_param: str = "offset"
    size_param: str | None = None
    page_size: int | None = Field(None, ge=1)
    start: int | None = None

    @model_validator(mode="after")
    def _keys_fit_style(self) -> Pagination:
        needs = {"next_url": "next_url", "cursor": "cursor"}
        if self.style in needs and getattr(self, needs[self.style]) is None:
            raise ValueError(
                f"style {self.style!r} needs `{needs[self.style]}:` (the dotted path in the "
                "response body, e.g. 'meta.next')"
            )
        for key in ("next_url", "cursor"):
            if getattr(self, key) is not None and self.style != key:
                raise ValueError(f"`{key}:` only applies to style {key!r}, not {self.style!r}")
            if getattr(self, key) is not None:
                split_path(getattr(self, key))  # a PathError is a ValueError: reported by pydantic
        if self.style == "offset" and self.page_size is None:
            raise ValueError(
                "style 'offset' needs `page_size:` (how far each page moves the offset)"
            )
        if self.size_param is not None and self.page_size is None:
            raise ValueError("`size_param:` needs `page_size:` (the value to send)")
        return self


class HttpSource(SourceSpec):
    kind: Literal["http"] = "http"
    url: str
    headers: dict[str, str] = Field(default_factory=dict)
    params: dict[str, Scalar] = Field(default_factory=dict)
    # Dotted path to the list of records in each response body; empty: the body is the list.
    records: str = ""
    pagination: Pagination | None = None
    timeout: float = Field(30.0, gt=0)
    retries: int = Field(3, ge=0)
    backoff: float = Field(0.5, ge=0)
    max_backoff: float = Field(30.0, ge=0)
    max_pages: int = Field(1000, ge=1)

    @model_validator(mode="after")
    def _paths_parse(self) -> HttpSource:
        split_path(self.records)
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(
                f"url must start with http:// or https://, got {mask_secrets(self.url)!r}"
            )
        return self

    def describe(self) -> str:
        return "http"

    def secret_values(self) -> list[str]:
        values = [v for k, v in self.headers.items() if is_secret_name(k)]
        values += [str(v) for k, v in self.params.items() if is_secret_name(k)]
        # "Bearer abc": the token alone may also be echoed back
        values += [v.split(None, 1)[1] for v in list(values) if " " in v.strip()]
        return values

    def read(self, ctx: SourceContext) -> pd.DataFrame:
        records: list[Any] = []
        with httpx.Client(
            timeout=self.timeout, headers=self.headers, follow_redirects=True
        ) as client:
            for page, (url, body) in enumerate(self._pages(client, ctx), start=1):
                found = self._records(body, url, page, ctx)
                records.extend(found)
        if not records:
            raise self.error(ctx, f"{mask_secrets(self.url)} returned no records")
        bad = next((r for r in records if not isinstance(r, dict)), None)
        if bad is not None:
            raise self.error(
                ctx,
                f"records must be JSON objects (one per user), found {type(bad).__name__} "
                f"{json.dumps(bad)[:60]}; point `records:` at the list of objects",
            )
        # Nested objects become dotted columns: {"plan": {"tier": 1}} -> "plan.tier".
        return pd.json_normalize(records, sep=".")

    # -- pages -----------------------------------------------------------------------------

    def _pages(self, client: httpx.Client, ctx: SourceContext) -> Iterator[tuple[str, Any]]:
        """Yield (url, parsed body) per page until the pagination style says stop."""
        p = self.pagination
        params: dict[str, Scalar] | None = dict(self.params)
        url = self.url
        counter = p.start if p and p.start is not None else (1 if p and p.style == "page" else 0)
        if p and p.style in ("page", "offset"):
            assert params is not None
            params[p.page_param if p.style == "page" else p.offset_param] = counter
            if p.size_param and p.page_size:
                params[p.size_param] = p.page_size
        for page in range(1, self.max_pages + 1):
            response = self._get(client, url, params, ctx)
            body = self._json(response, page, ctx)
            yield str(response.url), body
            if p is None:
                return
            if p.style in ("page", "offset"):
                if not self._records(body, str(response.url), page, ctx):
                    return  # an empty page ends the listing
                assert params is not None
                counter += 1 if p.style == "page" else (p.page_size or 0)
                params[p.page_param if p.style == "page" else p.offset_param] = counter
            elif p.style == "cursor":
                assert p.cursor is not None
                cursor = find_path(body, p.cursor)
                if cursor in (None, ""):
                    return
                params = {**(params or {}), p.cursor_param: _scalar(cursor)}
            else:
                nxt = (
                    parse_link_header(response.headers.get("link", "")).get("next")
                    if p.style == "link_header"
                    else find_path(body, p.next_url or "")
                )
                if not nxt:
                    return
                # The next URL already carries every query parameter the server wants.
                url, params = urljoin(str(response.url), str(nxt)), None
        raise self.error(
            ctx,
            f"pagination did not end after max_pages={self.max_pages} pages (last URL "
            f"{mask_secrets(url)}); raise `max_pages:` or check the `pagination:` settings",
        )

    def _get(
        self, client: httpx.Client, url: str, params: dict[str, Scalar] | None, ctx: SourceContext
    ) -> httpx.Response:
        attempts = self.retries + 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = client.get(url, params=params)
            except httpx.TimeoutException:
                if last:
                    raise self.error(
                        ctx,
                        f"GET {_shown(url, params)} timed out after {self.timeout:g} s "
                        f"({attempts} attempt(s)); raise `timeout:` or check the server",
                    ) from None
                self._sleep(attempt, None)
                continue
            except httpx.TransportError as exc:
                if last:
                    # Connected, then the server hung up mid-answer: not a timeout, not down.
                    dropped = isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError)
                    raise self.error(
                        ctx,
                        f"the connection to {_shown(url, params)} was dropped before a complete "
                        f"answer: {exc or type(exc).__name__} ({attempts} attempt(s)); check the "
                        "server's logs, or a proxy between apg and it"
                        if dropped
                        else f"cannot reach {_shown(url, params)}: {exc or type(exc).__name__} "
                        f"({attempts} attempt(s)); check the url and that the server is up",
                    ) from None
                self._sleep(attempt, None)
                continue
            status = response.status_code
            if status == 429 or status >= 500:
                if last:
                    raise self.error(
                        ctx,
                        f"GET {_shown(str(response.url))} answered HTTP {status} "
                        f"{response.reason_phrase} after {attempts} attempt(s): "
                        f"{_start(response)}",
                    )
                self._sleep(attempt, response.headers.get("retry-after"))
                continue
            if status >= 400:
                hint = (
                    "check the credentials in `headers:`"
                    if status in (401, 403)
                    else "check the url and `params:`"
                )
                raise self.error(
                    ctx,
                    f"GET {_shown(str(response.url))} answered HTTP {status} "
                    f"{response.reason_phrase}: {_start(response)}; {hint}",
                )
            return response
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _sleep(self, attempt: int, retry_after: str | None) -> None:
        wait = self.backoff * (2**attempt)
        server = retry_after_seconds(retry_after)
        if server is not None:
            wait = server
        time.sleep(max(0.0, min(wait, self.max_backoff)))

    def _json(self, response: httpx.Response, page: int, ctx: SourceContext) -> Any:
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise self.error(
                ctx,
                f"page {page} ({_shown(str(response.url))}) is not valid JSON "
                f"({exc}); the body starts {_start(response)}",
            ) from None

    def _records(self, body: Any, url: str, page: int, ctx: SourceContext) -> list[Any]:
        try:
            found = get_path(body, self.records)
        except PathError as exc:
            top = (
                f"; top-level keys are {listing(body.keys())}"
                if isinstance(body, dict) and "at the top level" not in str(exc)
                else ""
            )
            raise self.error(
                ctx,
                f"records path {self.records!r} not found in page {page} "
                f"({_shown(url)}): {exc}{top}",
            ) from None
        if not isinstance(found, list):
            kind = "an object" if isinstance(found, dict) else type(found).__name__
            where = f"records path {self.records!r}" if self.records else "the response body"
            extra = f" with keys {listing(found.keys())}" if isinstance(found, dict) else ""
            raise self.error(
                ctx,
                f"{where} in page {page} is {kind}{extra}, not a list of records; set "
                "`records:` to the dotted path of the list",
            )
        return found


def _scalar(value: Any) -> Scalar:
    return value if isinstance(value, str | int | float | bool) else json.dumps(value)


def _shown(url: str, params: dict[str, Scalar] | None = None) -> str:
    """The URL with its query, secrets masked, as the server would see it."""
    full = str(httpx.URL(url, params=params)) if params else url
    return mask_secrets(full)


def _start(response: httpx.Response, limit: int = 200) -> str:
    text = response.text
    return repr(text[:limit]) + (" ..." if len(text) > limit else "") if text else "(empty body)"


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` is either seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())
