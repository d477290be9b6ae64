"""Who may use the review pages, and how forms are protected.

* **Binding.** ``apg serve`` listens on 127.0.0.1 by default and refuses any other address
  unless ``APG_REVIEW_TOKEN`` is set (:func:`check_bind`); a token needs at least
  ``MIN_TOKEN`` non-space characters (:func:`check_token`).
* **Token.** With a token set, every page needs it: a login form starts a session (a random id
  stored in the database, :mod:`apg.store.sessions`, named in a signed cookie: HttpOnly,
  SameSite=Strict, ``Secure`` over TLS), or scripts send ``Authorization: Bearer TOKEN``.
  ``POST /logout`` deletes the session, so a copy of the cookie stops working. Tokens are
  compared in constant time.
* **Throttling.** Wrong tokens (form or bearer) are counted per client address with
  exponential backoff, and across all addresses with a token bucket (:class:`Throttle`).
  A session is never throttled, and a client without recent wrong tokens may always try once,
  so no attacker can lock everyone out.
* **Client address.** The TCP peer, unless it is a proxy listed in ``--trust-proxy``: then the
  nearest untrusted address of ``X-Forwarded-For`` (and ``X-Forwarded-Proto`` for TLS)
  (:func:`client_of`). Untrusted peers' forwarded headers are ignored: anyone could send them.
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
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from apg.errors import ApgError, ConfigError
from apg.store import sessions

TOKEN_ENV = "APG_REVIEW_TOKEN"
MIN_TOKEN = 16
SESSION_COOKIE = "apg_session"
SESSION_AGE = 12 * 3600  # seconds
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
LOGIN_FAILURES = 10  # wrong tokens from one address before it must wait
BACKOFF_BASE = 30.0  # seconds of the first wait; doubles with each further wrong token
BACKOFF_MAX = 900.0  # the longest wait of one address
FORGET_AFTER = 3600.0  # an address's wrong tokens are forgotten after this long without one
GLOBAL_BURST = 100  # wrong tokens from all addresses together before the global rate applies
GLOBAL_RATE = 0.1  # wrong tokens per second (6 a minute) from all addresses, on average
MAX_BODY = 1_000_000  # bytes of one POST
MAX_CLIENTS = 10_000  # addresses with recent failures kept in memory
MAX_ADDRESS = 64  # characters of a forwarded address kept (it is client-supplied text)
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


def check_token(token: str | None) -> str | None:
    """The token without surrounding whitespace; refused unless it has ``MIN_TOKEN``
    non-space characters (a token of 16 spaces is no secret)."""
    if token is None:
        return None
    solid = sum(not c.isspace() for c in token)
    if solid < MIN_TOKEN:
        whole = f" ({len(token)} characters in all)" if len(token) != solid else ""
        raise ConfigError(
            f"{TOKEN_ENV} has {solid} non-space characters{whole}; use at least {MIN_TOKEN}, "
            "e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'"
        )
    # Surrounding whitespace (a newline from a file) would make the bearer header, whose
    # value is stripped, never match: it is not part of the token.
    return token.strip()


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without a token, or with a weak one."""
    token = check_token(token)
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
    """A token is not needed, was sent as bearer, or the session is live (checked by the
    inner :class:`Guard`, which looks the session up in the store once per request)."""
    if token is None:
        return True
    return bool(request.scope.get("apg_bearer") or request.scope.get("apg_signed_in"))


def _session_alive(request: Request, token: str) -> bool:
    """The cookie says logged in, with this token, and its session id is still stored."""
    session = request.session
    session_id = session.get("sid")
    if not session.get("auth") or not isinstance(session_id, str):
        return False
    if not same_secret(session.get("token_id"), token_id(request, token)):
        return False
    return sessions.alive(request.app.state.store, session_id)


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


@dataclass(frozen=True)
class Wait:
    """Why a client may not try a token now, and for how long."""

    seconds: float
    reason: str

    @property
    def retry_after(self) -> str:
        return str(max(1, math.ceil(self.seconds)))

    def text(self) -> str:
        return f"{self.reason}; try again in {self.retry_after} seconds"


@dataclass
class Throttle:
    """Wrong tokens (form and bearer alike) per client address, and from all addresses.

    * Per address: ``free`` wrong tokens, then exponential backoff: after the n-th the address
      waits ``base * 2**(n - free)`` seconds (at most ``cap``) before its next try. Its count is
      forgotten ``forget`` seconds after its last wrong token.
    * Globally: a token bucket of ``burst`` wrong tokens, refilled at ``rate`` a second. While
      it is empty, every address with a recent wrong token waits for the refill; an address
      without one may still try (else an attacker with many addresses would lock everyone out),
      and its first wrong token makes it wait too. Many addresses guessing thus get one guess
      each plus the global rate.

    ``clock`` is injectable so tests can move time instead of sleeping.
    """

    clock: Callable[[], float] = time.monotonic
    free: int = LOGIN_FAILURES
    base: float = BACKOFF_BASE
    cap: float = BACKOFF_MAX
    forget: float = FORGET_AFTER
    burst: float = GLOBAL_BURST
    rate: float = GLOBAL_RATE
    clients: dict[str, tuple[int, float]] = field(default_factory=dict)  # -> (count, last)
    _tokens: float = field(init=False)
    _stamp: float = field(init=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._tokens, self._stamp = float(self.burst), self.clock()

    def delay(self, failures: int) -> float:
        """The wait after ``failures`` wrong tokens from one address."""
        if failures < self.free:
            return 0.0
        return min(self.base * 2.0 ** min(failures - self.free, 64), self.cap)

    def wait(self, client: str) -> Wait | None:
        """None if ``client`` may try a token now."""
        with self._lock:
            now = self._refill()
            failures, last = self._recent(client, now)
            if failures == 0:
                return None
            left = last + self.delay(failures) - now
            if left > 0:
                return Wait(left, f"too many wrong tokens from {client}")
            if self._tokens < 1:
                return Wait((1 - self._tokens) / self.rate, "too many wrong tokens recently")
            return None

    def fail(self, client: str) -> None:
        with self._lock:
            now = self._refill()
            # Debt (down to -burst) keeps the global wait growing while guessing goes on.
            self._tokens = max(self._tokens - 1, -float(self.burst))
            failures, _ = self._recent(client, now)
            self.clients.pop(client, None)
            self.clients[client] = (failures + 1, now)  # the newest last: eviction order
            while len(self.clients) > MAX_CLIENTS:
                del self.clients[next(iter(self.clients))]

    def _refill(self) -> float:
        now = self.clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        return now

    def _recent(self, client: str, now: float) -> tuple[int, float]:
        failures, last = self.clients.get(client, (0, now))
        if failures and now - last >= self.forget:
            del self.clients[client]
            return 0, now
        return failures, last


@dataclass(frozen=True)
class Proxies:
    """The reverse proxies whose ``X-Forwarded-For``/``-Proto`` headers are believed."""

    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def parse(cls, spec: str | Iterable[str] | None) -> Proxies:
        """``"127.0.0.1, 10.0.0.0/8"`` (addresses or networks) or a list of them."""
        parts = spec.split(",") if isinstance(spec, str) else list(spec or ())
        networks = []
        for part in (p.strip() for p in parts):
            if not part:
                continue
            try:
                networks.append(ipaddress.ip_network(part.strip("[]"), strict=False))
            except ValueError:
                raise ConfigError(
                    f"--trust-proxy: {part!r} is not an IP address or network; give the "
                    "proxy's address, e.g. --trust-proxy 127.0.0.1"
                ) from None
        return cls(tuple(networks))

    def trusts(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.networks)


def _hop(text: str) -> str:
    """One ``X-Forwarded-For`` entry as an address (``1.2.3.4:80``, ``[::1]:80`` allowed)."""
    text = text.strip()
    candidates = [text, text.strip("[]")]
    if text.startswith("[") and "]" in text:
        candidates.append(text[1 : text.index("]")])
    elif text.count(":") == 1:
        candidates.append(text.split(":", 1)[0])
    for candidate in candidates:
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    return text[:MAX_ADDRESS]  # "unknown", an obfuscated id: still one key per value


def client_of(scope: Scope, proxies: Proxies) -> tuple[str, bool]:
    """``(client address, came over TLS)``.

    The TCP peer and the ASGI scheme, unless the peer is a trusted proxy: then the address is
    the nearest ``X-Forwarded-For`` entry that is not itself a trusted proxy (entries to its
    left are whatever the client sent, so they are never believed), and TLS is what the first
    ``X-Forwarded-Proto`` value says.
    """
    peer = scope.get("client")
    address = str(peer[0]) if peer else "unknown"
    https = scope.get("scheme") == "https"
    if not proxies.trusts(address):
        return address, https
    headers = Headers(scope=scope)
    hops = [h for h in ",".join(headers.getlist("x-forwarded-for")).split(",") if h.strip()]
    for hop in reversed(hops):
        address = _hop(hop)
        if not proxies.trusts(address):
            break
    proto = headers.get("x-forwarded-proto")
    if proto:
        https = proto.split(",")[0].strip().lower() == "https"
    return address, https


class Guard:
    """Pure ASGI middleware: security headers, Host and Origin checks, the token gate.

    It sits outside the session middleware for headers, Host checks, the client address and
    bearer tokens, and relies on ``scope["session"]`` (set by the session middleware it wraps)
    for the session gate, so it is mounted twice: ``Guard(..., stage="outer")`` and
    ``Guard(..., stage="inner")``. The outer stage leaves in the scope ``apg_client`` (the
    address throttling counts), ``apg_secure`` (cookies get ``Secure``) and ``apg_bearer``;
    the inner one ``apg_signed_in``.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None,
        stage: str,
        throttle: Throttle | None = None,
        proxies: Proxies = Proxies(),
        always_secure: bool = False,
    ) -> None:
        self.app, self.token, self.stage = app, token, stage
        self.throttle = throttle or Throttle()
        self.proxies, self.always_secure = proxies, always_secure

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
        scope["apg_client"], https = client_of(scope, self.proxies)
        scope["apg_secure"] = secure = https or self.always_secure

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                for k, v in HEADERS.items():
                    out.setdefault(k, v)
                if out.get("content-type", "").startswith("text/html"):
                    out.setdefault("cache-control", "no-store")
                if secure:
                    message["headers"] = _secure_cookies(message["headers"])
            await send(message)

        problem = self._refused(scope, headers)
        if problem:
            await _plain(problem[0], problem[1], with_headers)
            return
        bearer_token = bearer(Request(scope))
        if self.token is not None and bearer_token is not None:
            client = scope["apg_client"]
            wait = self.throttle.wait(client)
            if wait is not None:  # refused before comparing: no answer to learn from
                await _plain(429, wait.text(), with_headers, retry_after=wait.retry_after)
                return
            if not same_secret(bearer_token, self.token):
                self.throttle.fail(client)
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
        if self.token is None or path.startswith("/static/"):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if not scope.get("apg_bearer"):
            try:  # once per request: pages ask authenticated() for the menu too
                scope["apg_signed_in"] = await run_in_threadpool(
                    _session_alive, request, self.token
                )
            except ApgError as exc:  # the store is unreachable: say so, no traceback
                await _plain(503, f"cannot check the session: {exc}", send)
                return
        if path.startswith(OPEN_PATHS) or authenticated(request, self.token):
            await self.app(scope, receive, send)
            return
        if scope["method"] in ("GET", "HEAD"):
            target = "/login?next=" + _quote(path)
            await send({"type": "http.response.start", "status": 303, "headers": _loc(target)})
            await send({"type": "http.response.body", "body": b""})
            return
        await _plain(401, "log in first: the review token is required", send)


def _secure_cookies(raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Add ``Secure`` to the session cookie: over TLS it must never travel in clear text."""
    prefix = SESSION_COOKIE.encode() + b"="
    out = []
    for key, value in raw:
        flags = [p.strip().lower() for p in value.split(b";")]
        if key.lower() == b"set-cookie" and value.startswith(prefix) and b"secure" not in flags:
            value += b"; secure"
        out.append((key, value))
    return out


def _host(origin: str) -> str:
    return origin.split("://", 1)[-1].rstrip("/")


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")


def _loc(target: str) -> list[tuple[bytes, bytes]]:
    return [(b"location", target.encode("latin-1")), (b"content-length", b"0")]


async def _plain(status: int, text: str, send: Send, *, retry_after: str | None = None) -> None:
    body = (text + "\n").encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
    ]
    if retry_after is not None:
        headers.append((b"retry-after", retry_after.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def safe_next(target: str | None) -> str:
    """A local path to go to after logging in (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
