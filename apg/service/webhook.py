"""POST one JSON message to a webhook: bounded retries, and nothing secret in what it reports.

A target's URL and headers come from the config after ``${ENV}`` expansion, so they may carry
tokens: in a header value, the URL's password, its query string, or its path (a Slack
incoming webhook *is* a secret path). What is shown, logged and stored is :func:`masked_url`
(scheme, host, port and first path segment) and errors scrubbed of :func:`secrets_of`.

Retries: connection errors, timeouts, HTTP 429 and 5xx are retried up to ``attempts`` times
with ``backoff`` seconds doubling between them; other 4xx answers are not (the request itself
is wrong). Every attempt's timeout is cut to the time left of ``max_seconds``, and
:func:`deliver_all` waits for no target longer than that (plus a moment), so a receiver that
hangs or trickles never holds the daemon beyond the bound.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from apg.config import NotifyTarget
from apg.sources.masking import MASK, mask_secrets
from apg.store.notifications import Delivery
from apg.version import __version__

# How much longer than max_seconds deliver_all waits for a target's thread to report.
GRACE = 1.0
USER_AGENT = f"apg/{__version__} (notifications)"


def masked_url(url: str) -> str:
    """``https://hooks.slack.com/services/***``: no userinfo, query or path past the first
    segment, where webhook tokens live."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    if parts.port is not None:
        host += f":{parts.port}"
    segments = [s for s in parts.path.split("/") if s]
    path = ""
    if segments:
        path = "/" + segments[0] + ("/" + MASK if len(segments) > 1 else "")
    query = "?" + MASK if parts.query else ""
    return f"{parts.scheme}://{host}{path}{query}"


def secrets_of(target: NotifyTarget) -> list[str]:
    """Exact values to scrub from anything printed about ``target``."""
    parts = urlsplit(target.url)
    values = list(target.headers.values())
    if masked_url(target.url) != target.url:  # a plain URL is no secret, and is what we show
        values.append(target.url)
    # "Bearer abc": the token alone may also be echoed back
    values += [v.split(None, 1)[1] for v in target.headers.values() if " " in v.strip()]
    if parts.password:
        values += [parts.password, unquote(parts.password)]
    if parts.query:
        values.append(parts.query)
        values += [p.partition("=")[2] for p in parts.query.split("&")]
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) > 1:
        values.append("/".join(segments[1:]))
        values += segments[1:]
    return [v for v in values if v]


def scrub(text: str, target: NotifyTarget) -> str:
    return mask_secrets(text, secrets_of(target))


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


def _answer(response: httpx.Response) -> str:
    start = response.text[:200].strip().replace("\n", " ")
    return f"HTTP {response.status_code} {response.reason_phrase}" + (f": {start}" if start else "")


def _also(result: Delivery, note: str) -> None:
    result.error = f"{result.error}; {note}" if result.error else note


def deliver(
    target: NotifyTarget,
    payload: dict[str, Any],
    *,
    event: str,
    events: list[str],
    result: Delivery | None = None,
) -> Delivery:
    """POST ``payload`` to ``target`` with retries; never raises for the receiver's faults.

    ``result`` (filled as the attempts go) lets a caller that stops waiting see how far it got.
    """
    if result is None:
        result = Delivery(masked_url(target.url), target.format, event, list(events))
    body = json.dumps(payload, ensure_ascii=False, default=str).encode("utf-8")
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **target.headers}
    begun = time.monotonic()
    deadline = begun + target.max_seconds
    try:
        with httpx.Client(follow_redirects=False) as client:
            for attempt in range(1, target.attempts + 1):
                left = deadline - time.monotonic()
                if left <= 0:
                    _also(result, f"gave up: max_seconds={target.max_seconds:g} reached")
                    break
                result.attempts = attempt
                retry = _attempt(client, target, body, headers, min(target.timeout, left), result)
                if not retry or attempt == target.attempts:
                    break
                pause = target.backoff * 2 ** (attempt - 1)
                if time.monotonic() + pause >= deadline:
                    _also(
                        result, f"no retry: it would start after max_seconds={target.max_seconds:g}"
                    )
                    break
                time.sleep(pause)
    except Exception as exc:  # a bug or an odd header must not stop the run's bookkeeping
        result.status, result.error = "failed", f"{type(exc).__name__}: {exc}"
    result.seconds = time.monotonic() - begun
    if result.error is not None:
        result.error = scrub(result.error, target)[:4000]
    return result


def _attempt(
    client: httpx.Client,
    target: NotifyTarget,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
    result: Delivery,
) -> bool:
    """One POST; fills ``result``; True when another attempt may help."""
    try:
        response = client.post(target.url, content=body, headers=headers, timeout=timeout)
    except httpx.TimeoutException:
        result.http_status = None
        cut = (
            f", the rest of max_seconds={target.max_seconds:g}" if timeout < target.timeout else ""
        )
        result.error = f"no answer within {timeout:.3g}s (timeout{cut})"
        return True
    except httpx.TransportError as exc:
        result.http_status = None
        result.error = f"cannot connect: {exc or type(exc).__name__}"
        return True
    result.http_status = response.status_code
    if response.is_success:
        result.status, result.error = "sent", None
        return False
    result.error = _answer(response)
    if _retryable(response.status_code):
        return True
    hint = (
        "check the credentials in `headers:`"
        if response.status_code in (401, 403)
        else "check the url, `headers:` and `format:`"
    )
    result.error += f"; not retried: {hint}"
    return False


def deliver_all(jobs: list[tuple[NotifyTarget, dict[str, Any], str, list[str]]]) -> list[Delivery]:
    """Deliver to every target at once; returns one :class:`Delivery` per job, in order.

    A target still busy at its ``max_seconds`` (plus ``GRACE``) is reported failed as it
    stood then, and left to finish in its daemon thread: the caller goes on.
    """
    running = []
    for i, (target, payload, event, events) in enumerate(jobs):
        result = Delivery(masked_url(target.url), target.format, event, list(events))
        thread = threading.Thread(
            target=deliver,
            args=(target, payload),
            kwargs={"event": event, "events": events, "result": result},
            name=f"apg-notify-{i}",
            daemon=True,
        )
        thread.start()
        running.append((thread, result, target, time.monotonic() + target.max_seconds + GRACE))
    out = []
    for thread, result, target, until in running:
        thread.join(max(0.0, until - time.monotonic()))
        if thread.is_alive() and result.status != "sent":
            late = replace(result, status="failed", seconds=target.max_seconds + GRACE)
            _also(late, f"no result within max_seconds={target.max_seconds:g}; gave up")
            late.error = scrub(late.error or "", target)
            out.append(late)
        else:
            out.append(result)
    return out
