"""Alertmanager payload -> one decision per alert, answered once the gate has decided.

Runs in a worker thread (the store is synchronous). Every alert gets a
decision row: executed (queued for the worker), blocked, escalated, or
recorded (resolved, investigation only, or no route).
"""

from __future__ import annotations

from typing import Any

from remediate.errors import UsageError
from remediate.pipeline.pipeline import Pipeline
from remediate.pipeline.request import Decision
from remediate.webhook.models import AlertPayload, WebhookPayload
from remediate.webhook.routing import find_route, request_for, to_alert

# The seed's words for what happened to an alert.
ACTIONS = {"execute": "executed", "block": "blocked", "escalate": "escalate", "record": "recorded"}


def process(pipeline: Pipeline, payload: WebhookPayload) -> list[dict[str, Any]]:
    return [process_alert(pipeline, alert, payload) for alert in payload.alerts]


def process_alert(
    pipeline: Pipeline, alert: AlertPayload, payload: WebhookPayload
) -> dict[str, Any]:
    name = alert.labels.get("alertname", "")
    route = find_route(pipeline.settings, alert)
    decision: Decision
    if alert.status == "resolved":
        decision = pipeline.note(
            source="webhook",
            alert=to_alert(alert),
            action="record",
            check="status",
            reason="resolved notification: recorded, never executed",
            playbook=route.playbook if route else None,
        )
    elif route is None:
        decision = pipeline.note(
            source="webhook",
            alert=to_alert(alert),
            action="record",
            check="route",
            reason=f"no route for alert {name!r}" if name else "alert has no alertname label",
        )
    else:
        request, why_not = request_for(route, alert, payload)
        if request is None:
            template_failed = why_not.startswith("parameter ")
            decision = pipeline.note(
                source="webhook",
                alert=to_alert(alert),
                action="block" if template_failed else "record",
                check="parameters" if template_failed else "route",
                reason=why_not,
                playbook=route.playbook,
                confidence=route.confidence,
            )
        else:
            try:
                decision = pipeline.decide(request)
            except (
                UsageError
            ) as error:  # decide records automatic bad input itself; belt and braces
                decision = pipeline.note(
                    source="webhook",
                    alert=to_alert(alert),
                    action="block",
                    check="parameters",
                    reason=error.message,
                    playbook=route.playbook,
                    confidence=route.confidence,
                )
    return {
        "alert": name,
        "action": ACTIONS[decision.action],
        "playbook": decision.playbook or None,
        "reason": decision.reason,
        "decision_id": decision.id,
        "result": "queued" if decision.execution_id else None,
        "execution_id": decision.execution_id,
        "approval_id": decision.approval_id,
    }
