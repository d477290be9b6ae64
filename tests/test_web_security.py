"""Security of the review pages: binding, token, sessions, CSRF, Host/Origin checks, headers."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient
from web_helpers import TOKEN, Demo, client, client_for, csrf_of, demo, demo_template, store

from apg.cli.main import main
from apg.errors import ConfigError
from apg.store import Store, review
from apg.web.security import LOGIN_FAILURES, check_bind, check_token, is_loopback, safe_next

__all__ = ["client", "demo", "demo_template", "store"]  # fixtures


# -- binding ---------------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_security_loopback_addresses_are_recognised(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "example.com", ""])
def test_security_other_addresses_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)


def test_security_check_bind_refuses_network_address_without_token() -> None:
    with pytest.raises(ConfigError, match=r"refusing to listen on 0\.0\.0\.0: .* APG_REVIEW_TOKEN"):
        check_bind("0.0.0.0", None)
    check_bind("0.0.0.0", TOKEN)
    check_bind("127.0.0.1", None)


def test_security_check_bind_refuses_short_token() -> None:
    with pytest.raises(
        ConfigError, match=r"^APG_REVIEW_TOKEN has 6 non-space characters; use at least 16, e\.g\."
    ):
        check_bind("127.0.0.1", "secret")


@pytest.mark.parametrize(
    ("token", "solid", "whole"),
    [(" " * 16, 0, 16), ("\t" * 20, 0, 20), ("a b c d e f g h i j k l m n o", 15, 29)],
)
def test_security_token_needs_16_non_space_characters(token: str, solid: int, whole: int) -> None:
    message = f"APG_REVIEW_TOKEN has {solid} non-space characters ({whole} characters in all); "
    with pytest.raises(ConfigError, match="^" + re.escape(message + "use at least 16")):
        check_token(token)
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_bind("0.0.0.0", token)


def test_security_token_loses_surrounding_whitespace() -> None:
    assert check_token(f"  {TOKEN}\n") == TOKEN
    assert check_token(None) is None


def test_cli_serve_refuses_a_token_of_spaces(demo: Demo) -> None:
    result = CliRunner().invoke(
        main, ["serve", "--db", demo.url], env={"APG_REVIEW_TOKEN": " " * 16}
    )
    assert result.exit_code == 1
    assert result.output == (
        "error: APG_REVIEW_TOKEN has 0 non-space characters (16 characters in all); use at "
        "least 16, e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'\n"
    )


def test_web_app_refuses_a_token_of_spaces(store: Store) -> None:
    with pytest.raises(ConfigError, match="APG_REVIEW_TOKEN has 0 non-space characters"):
        _app(store, " " * 16)


def test_cli_serve_refuses_to_listen_beyond_localhost_without_token(demo: Demo) -> None:
    result = CliRunner().invoke(main, ["serve", "--host", "0.0.0.0", "--db", demo.url])
    assert result.exit_code == 1
    assert result.output.startswith("error: refusing to listen on 0.0.0.0: anyone who can")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/personas/P-1", "/personas/P-1"),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        (None, "/"),
    ],
)
def test_security_safe_next_stays_on_this_site(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


# -- headers, Host and Origin ----------------------------------------------------------------
def test_web_pages_carry_security_headers(client: TestClient) -> None:
    response = client.get("/runs")
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert "'unsafe-inline'" not in csp.split("script-src", 1)[1].split(";")[0]
    assert "frame-ancestors 'none'" in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert "<script>" not in response.text  # no inline script: app.js only
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie


def test_web_static_assets_are_served_with_headers(client: TestClient) -> None:
    response = client.get("/static/app.css")
    assert response.status_code == 200
    assert response.headers["x-content-type-options"] == "nosniff"


def test_web_foreign_host_header_is_refused_without_token(store: Store) -> None:
    """A DNS-rebinding page reaches the server under its own host name: refused."""
    with TestClient(_app(store), base_url="http://evil.example") as c:  # type: ignore[arg-type]
        response = c.get("/runs")
    assert response.status_code == 421
    assert "answers to 127.0.0.1 and localhost only" in response.text


def _app(store: Store, token: str | None = None) -> object:
    from apg.web import create_app

    return create_app(store, token=token)


def test_web_cross_site_post_is_refused(client: TestClient, demo: Demo) -> None:
    page = f"/personas/{demo.changed}"
    token = csrf_of(client.get(page).text)
    for headers in ({"origin": "https://evil.example"}, {"sec-fetch-site": "cross-site"}):
        response = client.post(f"{page}/approve", data={"csrf": token, "by": "x"}, headers=headers)
        assert response.status_code == 403
        assert response.text == "cross-site form posts are refused\n"


# -- CSRF --------------------------------------------------------------------------------------
def test_web_post_without_csrf_token_is_403(client: TestClient, store: Store, demo: Demo) -> None:
    page = f"/personas/{demo.changed}"
    client.get(page)  # a session exists, but the form does not carry its token
    for data in ({"by": "x"}, {"by": "x", "csrf": "forged"}, {"by": "x", "csrf": ""}):
        response = client.post(f"{page}/approve", data=data)
        assert response.status_code == 403
        assert "CSRF token is missing or wrong" in response.text
    assert review.history(store, demo.changed)[-1]["status"] == "draft"


def test_web_csrf_token_of_another_session_is_403(store: Store, demo: Demo) -> None:
    page = f"/personas/{demo.changed}"
    with client_for(store) as alice, client_for(store) as mallory:
        token = csrf_of(alice.get(page).text)
        mallory.get(page)
        response = mallory.post(f"{page}/approve", data={"csrf": token, "by": "x"})
    assert response.status_code == 403


def test_web_csrf_token_in_header_is_accepted(client: TestClient, demo: Demo) -> None:
    page = f"/personas/{demo.changed}"
    token = csrf_of(client.get(page).text)
    response = client.post(
        f"{page}/approve", data={"by": "api", "version": "2"}, headers={"x-csrf-token": token}
    )
    assert response.status_code == 303


# -- token -------------------------------------------------------------------------------------
def test_web_token_mode_sends_visitors_to_the_login_form(store: Store) -> None:
    with client_for(store, TOKEN) as c:
        response = c.get("/personas?status=draft")
        assert response.status_code == 303
        assert response.headers["location"] == "/login?next=/personas"
        assert 'name="token"' in c.get("/login").text


def test_web_wrong_or_missing_token_is_refused(store: Store, demo: Demo) -> None:
    with client_for(store, TOKEN) as c:
        html = c.get("/login").text
        response = c.post("/login", data={"csrf": csrf_of(html), "token": TOKEN[:-1] + "x"})
        assert response.status_code == 401
        assert "That token is not right." in response.text
        assert c.get("/runs").status_code == 303  # still logged out
        response = c.post(f"/personas/{demo.changed}/approve", data={"by": "x"})
        assert response.status_code == 401


def test_web_login_with_token_opens_a_session(store: Store, demo: Demo) -> None:
    with client_for(store, TOKEN) as c:
        html = c.get("/login?next=/personas").text
        response = c.post(
            "/login", data={"csrf": csrf_of(html), "token": TOKEN, "next": "/personas"}
        )
        assert response.status_code == 303
        assert response.headers["location"] == "/personas"
        page = c.get(f"/personas/{demo.changed}")
        assert page.status_code == 200
        response = c.post(
            f"/personas/{demo.changed}/approve",
            data={"csrf": csrf_of(page.text), "by": "rita", "version": "2"},
        )
        assert response.status_code == 303
        logout = c.post("/logout", data={"csrf": csrf_of(c.get("/runs").text)})
        assert logout.headers["location"] == "/login"
        assert c.get("/runs").status_code == 303


def test_web_login_keeps_no_session_from_before(store: Store) -> None:
    with client_for(store, TOKEN) as c:
        before = csrf_of(c.get("/login").text)
        c.post("/login", data={"csrf": before, "token": TOKEN})
        after = csrf_of(c.get("/runs").text)
    assert after != before


def test_web_login_without_csrf_is_403(store: Store) -> None:
    with client_for(store, TOKEN) as c:
        c.get("/login")
        assert c.post("/login", data={"token": TOKEN}).status_code == 403


def test_web_login_is_throttled_after_repeated_wrong_tokens(store: Store) -> None:
    with client_for(store, TOKEN) as c:
        token = csrf_of(c.get("/login").text)
        for _ in range(LOGIN_FAILURES):
            assert c.post("/login", data={"csrf": token, "token": "nope"}).status_code == 401
        response = c.post("/login", data={"csrf": token, "token": TOKEN})
    assert response.status_code == 429


def test_web_bearer_token_works_without_session_or_csrf(store: Store, demo: Demo) -> None:
    with client_for(store, TOKEN) as c:
        auth = {"authorization": f"Bearer {TOKEN}"}
        assert c.get("/runs", headers=auth).status_code == 200
        response = c.post(
            f"/personas/{demo.changed}/approve",
            data={"by": "script", "version": "2"},
            headers=auth,
        )
        assert response.status_code == 303
        wrong = c.get("/runs", headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401
    assert review.history(store, demo.changed)[-1]["reviewed_by"] == "script"


def test_web_token_mode_serves_any_host_name(store: Store) -> None:
    with TestClient(_app(store, TOKEN), base_url="http://review.example") as c:  # type: ignore[arg-type]
        assert c.get("/runs", headers={"authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_web_oversized_post_is_refused(client: TestClient, demo: Demo) -> None:
    page = f"/personas/{demo.changed}"
    token = csrf_of(client.get(page).text)
    response = client.post(f"{page}/edit", data={"csrf": token, "summary": "x" * 1_000_001})
    assert response.status_code == 413
    assert response.text == "a form may send at most 1,000,000 bytes\n"
