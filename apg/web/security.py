"""Who may use the review pages, and how forms are protected.

* **Binding.** ``apg serve`` listens on 127.0.0.1 by default and refuses any other address
  unless ``APG_REVIEW_TOKEN`` is set (:func:`check_bind`).
* **Token.** With a token set, every page needs it: a login form puts it into a signed session
  cookie (HttpOnly, SameSite=Strict), or scripts send ``Authorization: Bearer TOKEN``. Tokens
  are compared in constant time; repeated wrong tokens from one address are throttled.
* **CSRF.** Each session has a random CSRF token; every POST must carry it (form field
  ``csrf`` or header ``X-CSRF-Token``), else 403. Cross-site POSTs (``Origin`` or
  ``Sec-Fetch-Site``) are refused too. A bearer request carries no ambient credential and
  needs no CSRF token.
* **Host.** Without a token, only loopback ``Host`` headers are served, so a DNS-rebinding page
  cannot reach the server through the browser.
* **Headers.** A Content-Security-Policy without inline scripts, ``X-Frame-Options: DENY``,
  ``nosniff``, no referrer, and ``no-store`` caching of pages.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from apg.errors import ConfigError

TOKEN_ENV = "APG_REVIEW_TOKEN"
MIN_TOKEN = 16
SESSION_COOKIE = "apg_session"
SESSION_AGE = 12 * 3600  # seconds
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
LOGIN_FAILURES = 10  # wrong tokens per address within LOGIN_WINDOW before refusing
LOGIN_WINDOW = 300.0
MAX_BODY = 1_000_000  # bytes of one POST
MAX_CLIENTS = 10_000  # addresses with recent failures kept in memory
OPEN_PATHS = ("/login", "/static/")
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; "
    "style-src-attr 'unsafe-inline'; script-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}
LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and ``localhost``."""
    host = host.strip().strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without a token, or with a weak one."""
    if token is not None and len(token) < MIN_TOKEN:
        raise ConfigError(
            f"{TOKEN_ENV} is {len(token)} characters; use at least {MIN_TOKEN}, e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    if not is_loopback(host) and token is None:
        raise ConfigError(
            f"refusing to listen on {host}: anyone who can reach it could review personas. "
            f"Set {TOKEN_ENV} (a secret of {MIN_TOKEN}+ characters, required to log in) or "
            "use --host 127.0.0.1"
        )


def same_secret(given: str | None, expected: str) -> bool:
    """Constant-time comparison (no early exit on the first differing character)."""
    return hmac.compare_digest((given or "").encode(), expected.encode())


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use."""
    session = request.session
    if not isinstance(session.get(CSRF_FIELD), str):
        session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return str(session[CSRF_FIELD])


def bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def authenticated(request: Request, token: str | None) -> bool:
    if token is None:
        return True
    if request.scope.get("apg_bearer"):
        return True
    return bool(request.session.get("auth")) and same_secret(
        request.session.get("token_id"), token_id(request, token)
    )


def token_id(request: Request, token: str) -> str:
    """A fingerprint of the token in the session: changing the token logs everyone out."""
    key = request.app.state.session_key
    return hmac.new(key, token.encode(), "sha256").hexdigest()[:32]


def check_csrf(request: Request, submitted: Any) -> None:
    """403 unless the POST carries the session's CSRF token (bearer requests excepted)."""
    if request.scope.get("apg_bearer"):
        return
    expected = request.session.get(CSRF_FIELD)
    given = submitted if isinstance(submitted, str) else request.headers.get(CSRF_HEADER)
    if not isinstance(expected, str) or not same_secret(given, expected):
        raise HTTPException(403, "the form's CSRF token is missing or wrong; reload the page")


@dataclass
class Throttle:
    """Wrong tokens per client address in a sliding window."""

    limit: int = LOGIN_FAILURES
    window: float = LOGIN_WINDOW
    failures: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))

    def blocked(self, client: str) -> bool:
        recent = self.failures[client]
        cutoff = time.monotonic() - self.window
        while recent and recent[0] < cutoff:
            recent.popleft()
        return len(recent) >= self.limit

    def fail(self, client: str) -> None:
        self.failures[client].append(time.monotonic())
        if len(self.failures) > MAX_CLIENTS:  # forget addresses whose failures expired
            for key in [k for k in self.failures if not self.blocked(k) and k != client]:
                if not self.failures[key]:
                    del self.failures[key]


class Guard:
    """Pure ASGI middleware: security headers, Host and Origin checks, the token gate.

    It sits outside the session middleware for headers and Host checks, and relies on
    ``scope["session"]`` (set by the session middleware it wraps) for the token gate, so it is
    mounted twice: ``Guard(..., stage="outer")`` and ``Guard(..., stage="inner")``.
    """

    def __init__(self, app: ASGIApp, *, token: str | None, stage: str) -> None:
        self.app, self.token, self.stage = app, token, stage

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.stage == "outer":
            await self._outer(scope, receive, send)
        else:
            await self._inner(scope, receive, send)

    async def _outer(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                for k, v in HEADERS.items():
                    out.setdefault(k, v)
                if out.get("content-type", "").startswith("text/html"):
                    out.setdefault("cache-control", "no-store")
            await send(message)

        problem = self._refused(scope, headers)
        if problem:
            await _plain(problem[0], problem[1], with_headers)
            return
        bearer_token = bearer(Request(scope))
        if self.token is not None and bearer_token is not None:
            if not same_secret(bearer_token, self.token):
                await _plain(401, "wrong bearer token", with_headers)
                return
            scope["apg_bearer"] = True
        await self.app(scope, receive, with_headers)

    def _refused(self, scope: Scope, headers: Headers) -> tuple[int, str] | None:
        host = headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if self.token is None and not is_loopback(name):
            return 421, f"this server answers to 127.0.0.1 and localhost only, not {host!r}"
        if scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            length = headers.get("content-length", "0")
            if not length.isdigit() or int(length) > MAX_BODY:
                return 413, f"a form may send at most {MAX_BODY:,} bytes"
            site = headers.get("sec-fetch-site")
            origin = headers.get("origin")
            if site == "cross-site" or (origin not in (None, "null") and _host(origin) != host):
                return 403, "cross-site form posts are refused"
        return None

    async def _inner(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if self.token is None or path.startswith(OPEN_PATHS):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if authenticated(request, self.token):
            await self.app(scope, receive, send)
            return
        if scope["method"] in ("GET", "HEAD"):
            target = "/login?next=" + _quote(path)
            await send({"type": "http.response.start", "status": 303, "headers": _loc(target)})
            await send({"type": "http.response.body", "body": b""})
            return
        await _plain(401, "log in first: the review token is required", send)


def _host(origin: str) -> str:
    return origin.split("://", 1)[-1].rstrip("/")


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")


def _loc(target: str) -> list[tuple[bytes, bytes]]:
    return [(b"location", target.encode("latin-1")), (b"content-length", b"0")]


async def _plain(status: int, text: str, send: Send) -> None:
    body = (text + "\n").encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def safe_next(target: str | None) -> str:
    """A local path to go to after logging in (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
