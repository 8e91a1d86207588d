"""Alertmanager payload -> one decision per alert, answered once the gate has decided.

Runs in a worker thread (the store is synchronous). Every alert gets a
decision row: executed (queued for the worker), blocked, escalated, or
recorded (resolved, investigation only, or no route). All alerts of one
notification are decided in one transaction: one commit, one fsync.
"""

from __future__ import annotations

from typing import Any

from remediate.pipeline.pipeline import Pipeline
from remediate.pipeline.request import Decision, Note, Request
from remediate.webhook.models import AlertPayload, WebhookPayload
from remediate.webhook.routing import find_route, request_for, to_alert

# The seed's words for what happened to an alert.
ACTIONS = {"execute": "executed", "block": "blocked", "escalate": "escalate", "record": "recorded"}


def intent(pipeline: Pipeline, alert: AlertPayload, payload: WebhookPayload) -> Request | Note:
    """What to do with one alert: a request for the gate, or a note to record."""
    name = alert.labels.get("alertname", "")
    route = find_route(pipeline.settings, alert)
    if alert.status == "resolved":
        return Note(
            "webhook",
            to_alert(alert),
            "record",
            "status",
            "resolved notification: recorded, never executed",
            playbook=route.playbook if route else None,
        )
    if route is None:
        reason = f"no route for alert {name!r}" if name else "alert has no alertname label"
        return Note("webhook", to_alert(alert), "record", "route", reason)
    request, why_not = request_for(route, alert, payload)
    if request is not None:
        return request
    template_failed = why_not.startswith("parameter ")
    return Note(
        "webhook",
        to_alert(alert),
        "block" if template_failed else "record",
        "parameters" if template_failed else "route",
        why_not,
        playbook=route.playbook,
        confidence=route.confidence,
    )


def intents(pipeline: Pipeline, payload: WebhookPayload) -> list[Request | Note]:
    return [intent(pipeline, alert, payload) for alert in payload.alerts]


def results(payload: WebhookPayload, decisions: list[Decision]) -> list[dict[str, Any]]:
    """The seed's response entries, one per alert, each naming its decision."""
    return [
        {
            "alert": alert.labels.get("alertname", ""),
            "action": ACTIONS[decision.action],
            "playbook": decision.playbook or None,
            "reason": decision.reason,
            "decision_id": decision.id,
            "result": "queued" if decision.execution_id else None,
            "execution_id": decision.execution_id,
            "approval_id": decision.approval_id,
        }
        for alert, decision in zip(payload.alerts, decisions, strict=True)
    ]


def process(pipeline: Pipeline, payload: WebhookPayload) -> list[dict[str, Any]]:
    """Decide a whole notification in one transaction (without the group-commit writer)."""
    return results(payload, pipeline.decide_all(intents(pipeline, payload)))
