"""The review pages: runs, a run's report, personas, and review actions (Starlette, Jinja2).

Pages are rendered on the server with autoescaping, so text from the data or from an LLM is
shown as text. Review actions call :mod:`apg.store.review`, the same code as ``apg review ...``.
Security (binding, token, sessions, CSRF, headers) lives in :mod:`apg.web.security`.
"""

from __future__ import annotations

import functools
import hmac
import secrets
from collections.abc import Iterable
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from apg.errors import ApgError, NotFoundError
from apg.report.avatars import persona_colour
from apg.store import Store, review, sessions
from apg.store.queries import WITH_CONTENT
from apg.store.reports import load_report
from apg.version import __version__
from apg.web import views
from apg.web.security import (
    CSRF_FIELD,
    SESSION_AGE,
    SESSION_COOKIE,
    Guard,
    Proxies,
    Throttle,
    authenticated,
    check_csrf,
    check_token,
    csrf_token,
    safe_next,
    same_secret,
    token_id,
)

STATUSES = ("draft", "approved", "rejected")
MAX_FIELDS = 50
MAX_FIELD = 20_000  # characters of one form field


@functools.cache
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("apg.web", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["version"] = __version__
    return env


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    token = request.app.state.token
    page = {
        "request": request,
        "csrf": csrf_token(request),
        "flash": request.session.pop("flash", None),
        "token_mode": token is not None and not request.scope.get("apg_bearer"),
        "signed_in": token is None or authenticated(request, token),
        "reviewer": request.session.get("reviewer", ""),
        "path": request.url.path,
        **context,
    }
    html = environment().get_template(name).render(page)
    return HTMLResponse(html, status_code=status)


def store_of(request: Request) -> Store:
    return request.app.state.store  # type: ignore[no-any-return]


# -- pages -------------------------------------------------------------------------------------
def home(request: Request) -> Response:
    return RedirectResponse("/runs", status_code=303)


def runs_page(request: Request) -> Response:
    runs = store_of(request).runs(200)
    return render(request, "runs.html.j2", {"title": "Runs", "runs": views.run_rows(runs)})


def run_page(request: Request) -> Response:
    store = store_of(request)
    run = store.run(request.path_params["run_id"])
    report = None
    missing: list[str] = []
    if run["status"] in WITH_CONTENT:
        with store.read() as conn:
            loaded = load_report(conn, run["id"])
        report = views.report_view(loaded.data, request.app.state.charts)
        missing = loaded.missing
        review_of = {p["persona_id"]: p for p in run["personas"]}
        for card in report["cards"]:
            card["review"] = (review_of.get(card["id"]) or {}).get("review") or "none"
    context = {
        "title": f"Run {run['id']}",
        "run": run,
        "started": views.when(run["started_at"]),
        "finished": views.when(run["finished_at"]),
        "chosen": views.chosen(run["algorithm"], run["params"]),
        "personas": views.persona_rows(run.get("personas") or []),
        "report": report,
        "missing": missing,
    }
    return render(request, "run.html.j2", context)


def report_download(request: Request) -> Response:
    from apg.report.html import render_html

    store = store_of(request)
    run_id = store.run(request.path_params["run_id"])["id"]
    with store.read() as conn:
        loaded = load_report(conn, run_id)
    return HTMLResponse(
        render_html(loaded.data),
        headers={"content-disposition": f'attachment; filename="report-{run_id}.html"'},
    )


def personas_page(request: Request) -> Response:
    store = store_of(request)
    status = request.query_params.get("status") or None
    if status is not None and status not in STATUSES:
        raise HTTPException(400, f"status must be one of {', '.join(STATUSES)}")
    run_ref = request.query_params.get("run") or None
    run = store.run(run_ref)
    every = store.personas(run["id"])
    shown = [p for p in every if status is None or p["review"] == status]
    counts = {s: sum(p["review"] == s for p in every) for s in STATUSES}
    context = {
        "title": "Personas",
        "run": run,
        "runs": [r for r in store.runs(50) if r["status"] in WITH_CONTENT],
        "status": status,
        "counts": counts,
        "total": len(every),
        "personas": views.persona_rows(shown),
    }
    return render(request, "personas.html.j2", context)


def _persona_context(store: Store, ref: str) -> dict[str, Any]:
    detail = store.persona(ref)
    pid = detail["persona_id"]
    versions = review.history(store, pid)
    latest = versions[-1] if versions else None
    main = latest if latest and latest["status"] == "draft" else detail["narrative"]
    approved = [v for v in versions if v["status"] == "approved"]
    compare = approved[-1] if main is latest and latest is not None and approved else None
    history = detail["history"]
    last = next((h for h in reversed(history) if h["status"] != "retired"), None)
    index = (last["rank"] - 1) if last and last.get("rank") else 0
    name = (main or {}).get("body", {}).get("name") or pid
    return {
        "title": f"{pid} {name}",
        "persona": detail,
        "pid": pid,
        "name": name,
        "avatar": views.persona_avatar(pid, name, index),
        "colour": persona_colour(index),
        "narrative": views.narrative_view(main),
        "latest": latest,
        "can_review": latest is not None and latest["status"] == "draft",
        "compare": compare,
        "compare_diff": views.diff_lines(compare["body"], main["body"]) if compare and main else [],
        "drift": views.drift_view(history[-1]["drift"] if history else None),
        "drift_run": history[-1]["run_id"] if history else None,
        "history": views.history_rows(history),
        "versions": views.version_views(versions),
        "form": views.edit_values(latest["body"] if latest else {}),
        "error": None,
        "failed": None,
        "review_note": "",
    }


def persona_page(request: Request) -> Response:
    context = _persona_context(store_of(request), request.path_params["persona_id"])
    return render(request, "persona.html.j2", context)


# -- review actions ----------------------------------------------------------------------------
async def _form(request: Request) -> dict[str, str]:
    """The POSTed fields after the CSRF check; text only, bounded."""
    async with request.form(max_files=0, max_fields=MAX_FIELDS) as form:
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
    check_csrf(request, fields.pop(CSRF_FIELD, None))
    for key, value in fields.items():
        if len(value) > MAX_FIELD:
            raise HTTPException(413, f"{key} is longer than {MAX_FIELD:,} characters")
    return fields


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        raise HTTPException(400, f"not a version number: {value!r}") from None


async def review_action(request: Request) -> Response:
    action = request.path_params["action"]
    if action not in ("approve", "reject", "edit"):
        raise HTTPException(404, f"no review action {action!r}")
    form = await _form(request)
    store = store_of(request)
    pid = request.path_params["persona_id"]
    by = form.get("by", "").strip()
    note = form.get("note", "").strip() or None
    try:
        if not by:
            raise review.ReviewError("give your name: every review action records who did it")
        request.session["reviewer"] = by[:128]
        if action == "approve":
            done = await run_in_threadpool(
                review.approve, store, pid, by=by, note=note, version=_int(form.get("version"))
            )
            message = f"Approved v{done['version']} of {done['persona_id']}."
        elif action == "reject":
            if note is None:
                raise review.ReviewError("rejecting needs a note saying why")
            done = await run_in_threadpool(
                review.reject, store, pid, by=by, note=note, version=_int(form.get("version"))
            )
            message = f"Rejected v{done['version']} of {done['persona_id']}."
        else:
            done = await run_in_threadpool(_edit, store, pid, form, by, note)
            message = f"Saved your edit as draft v{done['version']}; approve it when it reads well."
    except review.ReviewError as exc:
        context = await run_in_threadpool(_persona_context, store, pid)
        if action == "edit":
            context["form"] = {k: form.get(k, v) for k, v in context["form"].items()}
        context.update(error=str(exc), failed=action)
        if action != "edit":
            context["review_note"] = form.get("note", "")
        return render(request, "persona.html.j2", context, status=409)
    request.session["flash"] = message
    return RedirectResponse(f"/personas/{done['persona_id']}", status_code=303)


def _edit(store: Store, pid: str, form: dict[str, str], by: str, note: str | None) -> Any:
    versions = review.history(store, pid)
    latest = versions[-1] if versions else None
    base = _int(form.get("base_version"))
    if latest is not None and base != latest["version"]:
        raise review.ReviewError(
            f"v{latest['version']} was added by {latest['created_by']} after you opened this "
            "page; your text is below: compare it with the new version and save again"
        )
    changes = views.edit_changes(form, latest["body"] if latest else {})
    if not changes:
        raise review.ReviewError("nothing changed: edit a field before saving")
    return review.edit(store, pid, changes, by=by, note=note)


# -- login -------------------------------------------------------------------------------------
def login_page(request: Request) -> Response:
    if request.app.state.token is None:
        return RedirectResponse("/runs", status_code=303)
    nxt = safe_next(request.query_params.get("next"))
    return render(request, "login.html.j2", {"title": "Log in", "next": nxt, "error": None})


async def login(request: Request) -> Response:
    token = request.app.state.token
    if token is None:
        return RedirectResponse("/runs", status_code=303)
    form = await _form(request)
    client = str(request.scope.get("apg_client", "unknown"))  # set by Guard: proxy-aware
    throttle: Throttle = request.app.state.throttle
    nxt = safe_next(form.get("next"))
    wait = throttle.wait(client)
    if wait is not None:  # refused before comparing, so a blocked guesser learns nothing
        context = {"title": "Log in", "next": nxt, "error": wait.text().capitalize() + "."}
        response = render(request, "login.html.j2", context, status=429)
        response.headers["retry-after"] = wait.retry_after
        return response
    if not same_secret(form.get("token", "").strip(), token):
        throttle.fail(client)
        context = {"title": "Log in", "next": nxt, "error": "That token is not right."}
        return render(request, "login.html.j2", context, status=401)
    session_id = await run_in_threadpool(sessions.start, store_of(request), SESSION_AGE)
    reviewer = request.session.get("reviewer")
    request.session.clear()
    request.session.update(
        auth=True,
        sid=session_id,
        token_id=token_id(request, token),
        csrf=secrets.token_urlsafe(32),
    )
    if reviewer:
        request.session["reviewer"] = reviewer
    return RedirectResponse(nxt, status_code=303)


async def logout(request: Request) -> Response:
    """End the session in the store too: a copy of the cookie no longer logs anyone in."""
    await _form(request)
    session_id = request.session.get("sid")
    if isinstance(session_id, str):
        await run_in_threadpool(sessions.end, store_of(request), session_id)
    request.session.clear()
    return RedirectResponse("/login" if request.app.state.token else "/runs", status_code=303)


# -- errors ------------------------------------------------------------------------------------
def _error(request: Request, status: int, message: str) -> Response:
    if request.scope.get("session") is None:  # refused before the session was read
        return Response(message + "\n", status_code=status, media_type="text/plain")
    titles = {400: "Bad request", 403: "Forbidden", 404: "Not found", 413: "Too large"}
    context = {"title": titles.get(status, "Error"), "status": status, "message": message}
    return render(request, "error.html.j2", context, status=status)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(request, exc.status_code, exc.detail)


async def apg_error(request: Request, exc: Exception) -> Response:
    status = 404 if isinstance(exc, NotFoundError) else 500
    return _error(request, status, str(exc))


def create_app(
    store: Store,
    *,
    token: str | None = None,
    public_url: str | None = None,
    trust_proxy: str | Iterable[str] | None = None,
    throttle: Throttle | None = None,
) -> Starlette:
    """The review site over ``store``; with ``token``, every page needs it.

    ``public_url`` (``serve.public_url``) starting with https makes every session cookie
    ``Secure``; otherwise only those of requests that came over TLS are. ``trust_proxy``
    lists the reverse proxies (addresses or networks) whose ``X-Forwarded-For`` and
    ``X-Forwarded-Proto`` are believed. ``throttle`` counts wrong tokens (a test may pass one
    with its own clock).
    """
    token = check_token(token)
    throttle = throttle or Throttle()
    proxies = Proxies.parse(trust_proxy)
    always_secure = (public_url or "").lower().startswith("https://")
    routes = [
        Route("/", home),
        Route("/runs", runs_page),
        Route("/runs/{run_id}", run_page),
        Route("/runs/{run_id}/report.html", report_download),
        Route("/personas", personas_page),
        Route("/personas/{persona_id}", persona_page),
        Route("/personas/{persona_id}/{action}", review_action, methods=["POST"]),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Mount("/static", StaticFiles(packages=[("apg.web", "static")]), name="static"),
    ]
    session_key = _session_key(token)
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(
                Guard,
                token=token,
                stage="outer",
                throttle=throttle,
                proxies=proxies,
                always_secure=always_secure,
            ),
            Middleware(
                SessionMiddleware,
                secret_key=session_key.hex(),
                session_cookie=SESSION_COOKIE,
                max_age=SESSION_AGE,
                same_site="strict",
                https_only=False,  # Guard adds Secure per request (TLS or an https public_url)
            ),
            Middleware(Guard, token=token, stage="inner"),
        ],
        exception_handlers={HTTPException: http_error, ApgError: apg_error},
    )
    app.state.store = store
    app.state.token = token
    app.state.session_key = session_key
    app.state.charts = views.ChartCache()
    app.state.throttle = throttle
    return app


def _session_key(token: str | None) -> bytes:
    """The key signing session cookies.

    With a token it is derived from the token, so sessions (whose ids live in the store)
    survive a restart and work in every worker, and changing the token ends them all. Anyone
    able to forge a cookie with it knows the token already, and still needs a live session id.
    Without a token, sessions hold only CSRF tokens and names: a random key per process.
    """
    if token is None:
        return secrets.token_bytes(32)
    return hmac.new(token.encode(), b"apg review session cookie key v1", "sha256").digest()
