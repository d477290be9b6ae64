"""Sessions of the review pages: throttling wrong tokens, logout, Secure cookies, proxies.

Throttling runs on a :class:`Throttle` with an injected clock, moved by the tests instead of
sleeping. Behaviour that depends on the client address uses starlette's TestClient with an
explicit ``client`` address, and a real uvicorn server on 127.0.0.1 for forwarded headers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from click.testing import CliRunner
from starlette.testclient import TestClient
from web_helpers import BASE_URL, TOKEN, Demo, csrf_of, demo, demo_template, store

from apg.cli.main import main
from apg.errors import ConfigError
from apg.store import Store, sessions
from apg.web import create_app
from apg.web.security import (
    BACKOFF_BASE,
    BACKOFF_MAX,
    FORGET_AFTER,
    GLOBAL_BURST,
    GLOBAL_RATE,
    LOGIN_FAILURES,
    SESSION_AGE,
    SESSION_COOKIE,
    Proxies,
    Throttle,
    client_of,
)

__all__ = ["demo", "demo_template", "store"]  # fixtures

ATTACKER = "203.0.113.66"
REVIEWER = "198.51.100.7"
BEARER = {"authorization": f"Bearer {TOKEN}"}


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def _client(app: Any, address: str, base_url: str = BASE_URL) -> TestClient:
    return TestClient(app, base_url=base_url, follow_redirects=False, client=(address, 40000))


def _app(store: Store, clock: Clock, **options: Any) -> Any:
    return create_app(store, token=TOKEN, throttle=Throttle(clock=clock), **options)


def _login(c: TestClient, token: str = TOKEN) -> httpx.Response:
    csrf = csrf_of(c.get("/login").text)
    return c.post("/login", data={"csrf": csrf, "token": token, "next": "/runs"})


# -- the throttle itself -----------------------------------------------------------------------
def test_throttle_backs_off_exponentially_per_address(clock: Clock) -> None:
    throttle = Throttle(clock=clock)
    for _ in range(LOGIN_FAILURES):
        assert throttle.wait(ATTACKER) is None
        throttle.fail(ATTACKER)
    wait = throttle.wait(ATTACKER)
    assert wait is not None and wait.seconds == BACKOFF_BASE
    assert wait.text() == f"too many wrong tokens from {ATTACKER}; try again in 30 seconds"
    assert throttle.wait(REVIEWER) is None  # another address is not affected
    clock.now += BACKOFF_BASE
    assert throttle.wait(ATTACKER) is None
    throttle.fail(ATTACKER)  # the 11th wrong token doubles the wait
    assert throttle.wait(ATTACKER).seconds == 2 * BACKOFF_BASE  # type: ignore[union-attr]
    for _ in range(40):
        clock.now += BACKOFF_MAX
        throttle.fail(ATTACKER)
    assert throttle.wait(ATTACKER).seconds == BACKOFF_MAX  # type: ignore[union-attr]
    clock.now += FORGET_AFTER
    assert throttle.wait(ATTACKER) is None  # forgotten after an hour without a wrong token
    assert ATTACKER not in throttle.clients


def test_throttle_global_bucket_spares_clients_without_wrong_tokens(clock: Clock) -> None:
    throttle = Throttle(clock=clock)
    for i in range(GLOBAL_BURST):
        throttle.fail(f"10.0.{i // 250}.{i % 250}")
    wait = throttle.wait("10.0.0.1")
    assert wait is not None and wait.reason == "too many wrong tokens recently"
    assert wait.seconds == pytest.approx(1 / GLOBAL_RATE)
    assert throttle.wait(REVIEWER) is None  # never wrong: may still try
    throttle.fail(REVIEWER)
    assert throttle.wait(REVIEWER) is not None  # now it waits for the refill too
    clock.now += 2 / GLOBAL_RATE + 0.01  # refills 2 (one was owed for REVIEWER's failure)
    assert throttle.wait("10.0.0.1") is None


# -- bearer tokens -----------------------------------------------------------------------------
def test_web_wrong_bearer_tokens_are_throttled_per_address(
    store: Store, clock: Clock, demo: Demo
) -> None:
    app = _app(store, clock)
    with _client(app, ATTACKER) as attacker, _client(app, REVIEWER) as reviewer:
        wrong = {"authorization": "Bearer " + "x" * 32}
        codes = [attacker.get("/runs", headers=wrong).status_code for _ in range(200)]
        assert codes == [401] * LOGIN_FAILURES + [429] * (200 - LOGIN_FAILURES)
        refused = attacker.get("/runs", headers=BEARER)  # even the right one: no oracle
        assert refused.status_code == 429
        assert refused.text == f"too many wrong tokens from {ATTACKER}; try again in 30 seconds\n"
        assert refused.headers["retry-after"] == "30"
        assert reviewer.get("/runs", headers=BEARER).status_code == 200
        clock.now += BACKOFF_BASE
        assert attacker.get("/runs", headers=BEARER).status_code == 200


def test_web_bearer_and_form_share_one_count(store: Store, clock: Clock) -> None:
    with _client(_app(store, clock), ATTACKER) as c:
        for _ in range(LOGIN_FAILURES - 1):
            assert c.get("/runs", headers={"authorization": "Bearer nope"}).status_code == 401
        assert _login(c, "nope").status_code == 401
        assert _login(c).status_code == 429


# -- the log-in form ---------------------------------------------------------------------------
def test_web_login_lockout_is_per_address(store: Store, clock: Clock) -> None:
    app = _app(store, clock)
    with _client(app, ATTACKER) as attacker, _client(app, REVIEWER) as reviewer:
        assert _login(attacker).status_code == 303  # a session from before the attack
        with _client(app, ATTACKER) as guesser:
            for _ in range(LOGIN_FAILURES):
                assert _login(guesser, "wrong-token-wrong-token").status_code == 401
            page = _login(guesser)
            assert page.status_code == 429
            assert page.headers["retry-after"] == "30"
            assert f"Too many wrong tokens from {ATTACKER}; try again in 30 seconds." in page.text
        assert attacker.get("/runs").status_code == 200  # a live session is never throttled
        response = _login(reviewer)
        assert response.status_code == 303 and response.headers["location"] == "/runs"
        assert reviewer.get("/runs").status_code == 200


def test_web_many_addresses_guessing_cannot_lock_out_everyone(store: Store, clock: Clock) -> None:
    app = _app(store, clock)
    with _client(app, REVIEWER) as reviewer:
        assert _login(reviewer).status_code == 303
        for i in range(GLOBAL_BURST):
            with _client(app, f"10.9.{i // 250}.{i % 250}") as bot:
                assert bot.get("/runs", headers={"authorization": "Bearer no"}).status_code == 401
        with _client(app, "10.9.0.1") as bot:  # guessed before: waits for the global rate
            response = bot.get("/runs", headers={"authorization": "Bearer no"})
            assert response.status_code == 429
            assert response.text == "too many wrong tokens recently; try again in 10 seconds\n"
        with _client(app, "192.0.2.1") as newcomer:  # no wrong token yet: may log in
            assert newcomer.get("/runs", headers=BEARER).status_code == 200
            assert _login(newcomer).status_code == 303
        assert reviewer.get("/runs").status_code == 200


# -- sessions in the store ---------------------------------------------------------------------
def test_web_logout_ends_the_session_for_a_saved_cookie(store: Store) -> None:
    app = create_app(store, token=TOKEN)
    with _client(app, REVIEWER) as c:
        assert _login(c).status_code == 303
        saved = c.cookies[SESSION_COOKIE]
        assert c.get("/runs").status_code == 200
        logout = c.post("/logout", data={"csrf": csrf_of(c.get("/runs").text)})
        assert logout.status_code == 303 and logout.headers["location"] == "/login"
    with _client(app, REVIEWER) as replay:
        replay.cookies.set(SESSION_COOKIE, saved)
        response = replay.get("/runs")
        assert response.status_code == 303
        assert response.headers["location"] == "/login?next=/runs"
        post = replay.post("/logout", data={"csrf": "x"})
        assert post.status_code == 401
        assert post.text == "log in first: the review token is required\n"


def test_web_session_survives_a_restart_and_is_shared_by_workers(store: Store) -> None:
    first, second = create_app(store, token=TOKEN), create_app(store, token=TOKEN)
    with _client(first, REVIEWER) as c:
        assert _login(c).status_code == 303
        cookie = c.cookies[SESSION_COOKIE]
    with _client(second, REVIEWER) as other:
        other.cookies.set(SESSION_COOKIE, cookie)
        assert other.get("/runs").status_code == 200  # another process, same store
        other.post("/logout", data={"csrf": csrf_of(other.get("/runs").text)})
    with _client(first, REVIEWER) as again:
        again.cookies.set(SESSION_COOKIE, cookie)
        assert again.get("/runs").status_code == 303  # ended everywhere
    with _client(create_app(store, token=TOKEN + "-changed"), REVIEWER) as rotated:
        rotated.cookies.set(SESSION_COOKIE, cookie)
        assert rotated.get("/runs").status_code == 303  # a new token ends every session


def test_store_sessions_expire_and_end(store: Store) -> None:
    start = datetime(2025, 1, 6, 3, 0, tzinfo=UTC)
    sid = sessions.start(store, SESSION_AGE, at=start)
    assert sessions.alive(store, sid, at=start + timedelta(hours=11))
    assert not sessions.alive(store, sid, at=start + timedelta(seconds=SESSION_AGE))
    assert not sessions.alive(store, sid + "x", at=start)
    later = sessions.start(store, SESSION_AGE, at=start + timedelta(hours=13))
    assert not sessions.end(store, sid)  # deleted as expired when `later` started
    assert sessions.end(store, later)
    assert not sessions.alive(store, later, at=start + timedelta(hours=13))


# -- Secure cookies ----------------------------------------------------------------------------
def _cookie(app: Any, base_url: str, headers: dict[str, str] | None = None) -> str:
    with _client(app, "127.0.0.1", base_url) as c:
        return c.get("/login", headers=headers or {}).headers["set-cookie"].lower()


def test_web_cookie_is_secure_over_tls_only(store: Store) -> None:
    app = create_app(store, token=TOKEN)
    assert "; secure" in _cookie(app, "https://review.example")
    assert "secure" not in _cookie(app, "http://review.example")
    assert "httponly" in _cookie(app, "https://review.example")


def test_web_cookie_is_secure_when_the_public_url_is_https(store: Store) -> None:
    app = create_app(store, token=TOKEN, public_url="https://apg.example.com")
    assert "; secure" in _cookie(app, "http://127.0.0.1")
    app = create_app(store, token=TOKEN, public_url="http://apg.example.com")
    assert "secure" not in _cookie(app, "http://127.0.0.1")


def test_web_forwarded_proto_counts_from_a_trusted_proxy_only(store: Store) -> None:
    proto = {"x-forwarded-proto": "https"}
    trusted = create_app(store, token=TOKEN, trust_proxy="127.0.0.1")
    assert "; secure" in _cookie(trusted, "http://review.example", proto)
    untrusted = create_app(store, token=TOKEN)
    assert "secure" not in _cookie(untrusted, "http://review.example", proto)


# -- client address behind a proxy -------------------------------------------------------------
def _scope(peer: str, forwarded: str | None = None, proto: str | None = None) -> dict[str, Any]:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    headers += [(b"x-forwarded-proto", proto.encode())] if proto else []
    return {"type": "http", "client": (peer, 5000), "scheme": "http", "headers": headers}


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("127.0.0.1", "198.51.100.7", "198.51.100.7"),
        ("127.0.0.1", "6.6.6.6, 198.51.100.7", "198.51.100.7"),  # the left part is the client's
        ("127.0.0.1", "198.51.100.7, 10.1.2.3", "198.51.100.7"),  # 10.1.2.3: a trusted hop
        ("127.0.0.1", "198.51.100.7:4711", "198.51.100.7"),
        ("127.0.0.1", "[2001:db8::1]:443", "2001:db8::1"),
        ("127.0.0.1", None, "127.0.0.1"),
        ("192.0.2.50", "198.51.100.7", "192.0.2.50"),  # not a trusted proxy: header ignored
    ],
)
def test_security_client_address(peer: str, forwarded: str | None, expected: str) -> None:
    proxies = Proxies.parse("127.0.0.1, 10.0.0.0/8")
    assert client_of(_scope(peer, forwarded), proxies) == (expected, False)


def test_security_client_address_without_trusted_proxies_is_the_peer() -> None:
    assert client_of(_scope("127.0.0.1", "198.51.100.7", "https"), Proxies()) == (
        "127.0.0.1",
        False,
    )
    assert client_of(_scope("127.0.0.1", None, "https"), Proxies.parse("127.0.0.1"))[1]


def test_security_trust_proxy_must_be_addresses() -> None:
    with pytest.raises(ConfigError, match=r"^--trust-proxy: 'proxy\.local' is not an IP"):
        Proxies.parse("127.0.0.1,proxy.local")


@contextmanager
def _serve(app: Any) -> Iterator[str]:
    """uvicorn on 127.0.0.1 as `apg serve` runs it: ``proxy_headers=False``, so the app alone
    decides whom to believe (uvicorn's default would rewrite the peer from X-Forwarded-For)."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", proxy_headers=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)


def _browser(url: str, address: str) -> httpx.Client:
    """One person's browser, reaching the server through the proxy (which adds the header)."""
    headers = {"x-forwarded-for": address}
    return httpx.Client(base_url=url, headers=headers, follow_redirects=False, timeout=10)


def test_server_behind_trusted_proxy_counts_each_client(store: Store) -> None:
    app = create_app(store, token=TOKEN, trust_proxy="127.0.0.1")
    with (
        _serve(app) as url,
        _browser(url, ATTACKER) as attacker,
        _browser(url, REVIEWER) as reviewer,
    ):
        csrf = csrf_of(attacker.get("/login").text)
        for _ in range(LOGIN_FAILURES):
            wrong = attacker.post("/login", data={"csrf": csrf, "token": "guess-guess-guess"})
            assert wrong.status_code == 401
        refused = attacker.post("/login", data={"csrf": csrf, "token": TOKEN})
        assert refused.status_code == 429
        assert f"Too many wrong tokens from {ATTACKER}; try again in 30 seconds." in refused.text
        csrf = csrf_of(reviewer.get("/login").text)
        tls = {"x-forwarded-proto": "https"}  # the proxy took the request over TLS
        response = reviewer.post("/login", data={"csrf": csrf, "token": TOKEN}, headers=tls)
        assert response.status_code == 303
        assert "; secure" in response.headers["set-cookie"].lower()
        # httpx keeps a Secure cookie for https URLs only; the browser behind the proxy would
        reviewer.cookies.set(SESSION_COOKIE, response.cookies[SESSION_COOKIE])
        assert reviewer.get("/runs").status_code == 200


def test_server_without_trusted_proxy_ignores_forwarded_for(store: Store) -> None:
    """Not trusted, X-Forwarded-For is anyone's text: all these clients are 127.0.0.1."""
    with (
        _serve(create_app(store, token=TOKEN)) as url,
        _browser(url, ATTACKER) as attacker,
        _browser(url, REVIEWER) as reviewer,
    ):
        for _ in range(LOGIN_FAILURES):
            wrong = attacker.get("/runs", headers={"authorization": "Bearer guess"})
            assert wrong.status_code == 401
        refused = reviewer.get("/runs", headers=BEARER)
        assert refused.status_code == 429
        assert refused.text.startswith("too many wrong tokens from 127.0.0.1; try again in")


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (
            ["--trust-proxy", "proxy.local"],
            "error: --trust-proxy: 'proxy.local' is not an IP address or network; give the "
            "proxy's address, e.g. --trust-proxy 127.0.0.1\n",
        ),
        (
            ["--public-url", "ftp://apg.example.com"],
            "error: --public-url 'ftp://apg.example.com' must start with http:// or https://\n",
        ),
    ],
)
def test_cli_serve_checks_proxy_and_public_url(demo: Demo, option: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["serve", "--db", demo.url, *option])
    assert result.exit_code == 1
    assert result.output == message
