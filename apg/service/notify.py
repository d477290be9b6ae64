"""Notifications after daemon runs: which events a run raised, the message, who gets it.

Events, in precedence order (``apg.config.NOTIFY_EVENTS``):

* ``failed``: the run failed (the reason is the error);
* ``degraded``: some narratives fell back to the offline text (the LLM was unavailable);
* ``weak``: the chosen structure is weak (``selection.structure`` in personas.json);
* ``drift``: a matched persona drifted above ``continuity.drift_threshold`` (it is ``changed``);
* ``succeeded``: the run finished with personas (succeeded, degraded, or unchanged data);
  the message lists the new and changed personas waiting for review.

A run raises every event that applies (a degraded run with drift raises ``degraded``, ``drift``
and ``succeeded``). Each target gets **one message per run**, naming as ``event`` the first of
the run's events, in precedence order, that the target subscribed to, and listing them all in
``events``; a target subscribed to none of them gets nothing. Interrupted runs (the daemon
stopping) raise no event. Delivery is bounded and never raises (:mod:`apg.service.webhook`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from apg.config import NOTIFY_EVENTS, Config, NotifyTarget
from apg.errors import ApgError
from apg.service import webhook
from apg.store import Store, notifications
from apg.store.notifications import Delivery
from apg.version import __version__

log = logging.getLogger("apg.service.notify")
WITH_PERSONAS = ("succeeded", "degraded", "unchanged")
SLACK_LIST = 20  # personas listed by name in a Slack message; the rest are counted
ICONS = {
    "failed": ":x:",
    "degraded": ":warning:",
    "weak": ":warning:",
    "drift": ":arrows_counterclockwise:",
    "succeeded": ":white_check_mark:",
    "test": ":bell:",
}


@dataclass
class RunNews:
    """What a notification says about one run."""

    run_id: str | None
    status: str  # succeeded | degraded | unchanged | failed
    reason: str | None = None
    trigger: str = "schedule"
    attempt: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    previous_run_id: str | None = None
    personas: list[dict[str, Any]] = field(default_factory=list)
    weak: list[str] = field(default_factory=list)
    drift_threshold: float = 0.25

    @property
    def to_review(self) -> list[dict[str, Any]]:
        """New and changed personas of this run whose draft waits for review."""
        if self.status not in ("succeeded", "degraded"):
            return []
        return [
            p
            for p in self.personas
            if p["status"] in ("new", "changed") and p.get("review") == "draft"
        ]

    @property
    def drifted(self) -> list[dict[str, Any]]:
        if self.status not in ("succeeded", "degraded"):
            return []  # an unchanged run lists its match's personas: no new drift
        return [
            p
            for p in self.personas
            if p.get("drift") is not None and p["drift"] > self.drift_threshold
        ]

    def events(self) -> list[str]:
        """Every event this run raised, in precedence order."""
        if self.status == "failed":
            return ["failed"]
        if self.status not in WITH_PERSONAS:
            return []
        raised = {
            "degraded": self.status == "degraded",
            "weak": bool(self.weak) and self.status != "unchanged",
            "drift": bool(self.drifted),
            "succeeded": True,
        }
        return [e for e in NOTIFY_EVENTS if raised.get(e)]


def news_from_store(store: Store, run_id: str, config: Config) -> RunNews:
    with store.read() as conn:
        facts = notifications.run_facts(conn, run_id)
    return RunNews(
        run_id=run_id,
        status=facts["status"],
        reason=facts["reason"] or facts["error"],
        trigger=facts["trigger"] or "manual",
        attempt=facts["attempt"] or 0,
        started_at=facts["started_at"],
        finished_at=facts["finished_at"],
        previous_run_id=facts["previous_run_id"],
        personas=facts["personas"],
        weak=facts["weak"],
        drift_threshold=config.continuity.drift_threshold,
    )


# -- messages ----------------------------------------------------------------------------------
def _names(personas: list[dict[str, Any]], limit: int | None = None) -> str:
    shown = personas if limit is None else personas[:limit]
    text = ", ".join(f"{p['name'] or p['id']} ({p['id']})" for p in shown)
    if limit is not None and len(personas) > limit:
        text += f" and {len(personas) - limit} more"
    return text


def headline(news: RunNews, event: str) -> str:
    """One line for people: what happened, from the named event's point of view."""
    run = news.run_id or "(not recorded)"
    review = news.to_review
    if event == "failed":
        return f"apg run {run} failed: {news.reason or 'no reason recorded'}"
    if event == "degraded":
        return f"apg run {run} degraded: {news.reason or 'offline text used'}"
    if event == "weak":
        return f"apg run {run} found weak structure: {'; '.join(news.weak)}"
    if event == "drift":
        moved = ", ".join(
            f"{p['name'] or p['id']} ({p['id']}, drift {p['drift']:.2f})" for p in news.drifted
        )
        n = len(news.drifted)
        return (
            f"apg run {run}: {n} persona{'s' * (n != 1)} drifted above "
            f"{news.drift_threshold:g}: {moved}"
        )
    if news.status == "unchanged":
        return (
            f"apg run {run}: data and settings unchanged since {news.previous_run_id}; "
            "nothing new to review"
        )
    if not review:
        return f"apg run {run} {news.status}: nothing new to review"
    n = len(review)
    return f"apg run {run} {news.status}: {n} persona{'s' * (n != 1)} to review: {_names(review)}"


def _links(news: RunNews, public_url: str | None) -> dict[str, str]:
    if not public_url or news.run_id is None:
        return {}
    links = {"run": f"{public_url}/runs/{news.run_id}"}
    if news.personas:
        run = news.run_id if news.status != "unchanged" else news.previous_run_id
        links["review"] = f"{public_url}/personas?run={run}&status=draft"
    return links


def _persona_url(public_url: str | None, persona_id: str) -> str | None:
    return f"{public_url}/personas/{persona_id}" if public_url else None


def json_payload(
    news: RunNews, event: str, events: list[str], public_url: str | None
) -> dict[str, Any]:
    """``format: json``: one object; the README documents every key."""

    def entry(p: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": p["id"],
            "name": p["name"],
            "status": p["status"],
            "review": p.get("review"),
            "drift": p.get("drift"),
            "url": _persona_url(public_url, p["id"]),
        }

    counts = {
        s: sum(p["status"] == s for p in news.personas)
        for s in ("new", "continuing", "changed", "retired")
    }
    also = [e for e in events if e != event]
    return {
        "event": event,
        "events": events,
        "run_id": news.run_id,
        "status": news.status,
        "reason": news.reason,
        "text": headline(news, event) + (f" (also: {', '.join(also)})" if also else ""),
        "trigger": news.trigger,
        "attempt": news.attempt,
        "started_at": news.started_at,
        "finished_at": news.finished_at,
        "previous_run_id": news.previous_run_id,
        "counts": {
            "personas": sum(p["status"] != "retired" for p in news.personas),
            **counts,
            "to_review": len(news.to_review),
            "drifted": len(news.drifted),
        },
        "personas": [entry(p) for p in news.personas],
        "to_review": [entry(p) for p in news.to_review],
        "drift": {
            "threshold": news.drift_threshold,
            "personas": [entry(p) for p in news.drifted],
        },
        "weak": news.weak,
        "links": _links(news, public_url),
        "apg_version": __version__,
    }


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(
    news: RunNews, event: str, events: list[str], public_url: str | None
) -> dict[str, Any]:
    """``format: slack``: an incoming-webhook message, ``text`` plus Block Kit ``blocks``."""
    text = json_payload(news, event, events, public_url)["text"]
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"{ICONS.get(event, '')} {_slack_escape(text)}"[:3000],
            },
        }
    ]
    listed = news.to_review if event != "drift" else news.drifted
    if listed:
        lines = []
        for p in listed[:SLACK_LIST]:
            name = _slack_escape(p["name"] or p["id"])
            url = _persona_url(public_url, p["id"])
            label = f"<{_slack_escape(url)}|{name}>" if url else f"*{name}*"
            lines.append(f"• {label} ({p['id']}, {p['status']})")
        if len(listed) > SLACK_LIST:
            lines.append(f"… and {len(listed) - SLACK_LIST} more")
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:3000]}}
        )
    links = _links(news, public_url)
    context = [f"run `{news.run_id}`" if news.run_id else "run not recorded", news.status]
    if news.trigger:
        context.append(f"trigger {news.trigger}")
    if "review" in links:
        context.append(f"<{_slack_escape(links['review'])}|review drafts>")
    blocks.append(
        {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]}
    )
    return {"text": _slack_escape(text), "blocks": blocks}


def payload_for(
    target: NotifyTarget, news: RunNews, event: str, events: list[str], public_url: str | None
) -> dict[str, Any]:
    build = slack_payload if target.format == "slack" else json_payload
    return build(news, event, events, public_url)


# -- sending -----------------------------------------------------------------------------------
def _log_delivery(index: int, d: Delivery, run_id: str | None) -> None:
    tries = f"{d.attempts} attempt{'s' * (d.attempts != 1)}"
    if d.status == "sent":
        log.info(
            "notify[%d] %s: sent %s (HTTP %s, %s)",
            index,
            d.target,
            d.event,
            d.http_status,
            tries,
            extra={"run_id": run_id, "event": "notify-sent"},
        )
    else:
        log.warning(
            "notify[%d] %s: %s not delivered after %s: %s",
            index,
            d.target,
            d.event,
            tries,
            d.error,
            extra={"run_id": run_id, "event": "notify-failed"},
        )


def notify_run(config: Config, store: Store | None, news: RunNews) -> list[Delivery]:
    """Send the run's message to each subscribed target, log and record how it went.

    Never raises: a notification problem must not turn a run into a failure.
    """
    if not config.notify:
        return []
    events = news.events()
    jobs, indexes = [], []
    try:
        for i, target in enumerate(config.notify):
            chosen = [e for e in events if e in target.events]
            if not chosen:
                log.info(
                    "notify[%d] %s: no message (run events: %s; it takes %s)",
                    i,
                    webhook.masked_url(target.url),
                    ", ".join(events) or "none",
                    ", ".join(target.events),
                    extra={"run_id": news.run_id},
                )
                continue
            payload = payload_for(target, news, chosen[0], events, config.serve.public_url)
            jobs.append((target, payload, chosen[0], events))
            indexes.append(i)
        deliveries = webhook.deliver_all(jobs)
    except Exception as exc:  # a bug here must not fail the run
        log.error("notifications not sent: %s: %s", type(exc).__name__, exc)
        return []
    for i, d in zip(indexes, deliveries, strict=True):
        _log_delivery(i, d, news.run_id)
    if store is not None and news.run_id is not None and deliveries:
        try:
            with store.write() as conn:
                if notifications.run_exists(conn, news.run_id):
                    notifications.record(conn, news.run_id, deliveries)
        except ApgError as exc:
            log.error("could not record the notifications: %s", exc, extra={"run_id": news.run_id})
    return deliveries


def _test_news() -> RunNews:
    return RunNews(run_id=None, status="test", reason="a test message from `apg notify test`")


def send_test(config: Config) -> list[Delivery]:
    """``apg notify test``: a test message to every target, whatever its events."""
    news = _test_news()
    jobs = []
    for target in config.notify:
        payload = payload_for(target, news, "test", [], config.serve.public_url)
        payload["text"] = (
            "apg notify test: this target receives " + ", ".join(target.events) + " messages"
        )
        if target.format == "slack":
            payload["blocks"][0]["text"]["text"] = f"{ICONS['test']} {payload['text']}"
        jobs.append((target, payload, "test", []))
    return webhook.deliver_all(jobs)
