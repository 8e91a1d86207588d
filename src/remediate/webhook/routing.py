"""Alert -> route -> Request, with Alertmanager-style parameter templates.

A route's parameters are templates such as `{{.Labels.name}}`,
`{{.CommonLabels.x}}`, `{{.Annotations.x}}`, `{{.CommonAnnotations.x}}` or
`{{.GroupLabels.x}}`. They fill the route's declared parameters only, and every
value is then validated by the playbook's parameter model before anything runs:
a label such as `jellyfin; rm -rf /` is blocked with its reason.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from remediate.config.models import Route, Settings
from remediate.pipeline.request import Alert, Request
from remediate.webhook.models import AlertPayload, WebhookPayload

_TEMPLATE = re.compile(
    r"\{\{\s*\.(Labels|CommonLabels|Annotations|CommonAnnotations|GroupLabels)"
    r"\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}"
)


class TemplateError(ValueError):
    pass


def render(template: str, alert: AlertPayload, payload: WebhookPayload) -> str:
    sources: Mapping[str, Mapping[str, str]] = {
        "Labels": alert.labels,
        "Annotations": alert.annotations,
        "CommonLabels": payload.commonLabels,
        "CommonAnnotations": payload.commonAnnotations,
        "GroupLabels": payload.groupLabels,
    }

    def substitute(match: re.Match[str]) -> str:
        source, key = match.group(1), match.group(2)
        value = sources[source].get(key)
        if value is None:
            raise TemplateError(f"{{{{.{source}.{key}}}}} is not set on this alert")
        return value

    return _TEMPLATE.sub(substitute, template)


def unsupported(template: str) -> bool:
    """True when a template has `{{...}}` that is not one of the supported forms."""
    return "{{" in _TEMPLATE.sub("", template)


def to_alert(alert: AlertPayload) -> Alert:
    return Alert(
        name=alert.labels.get("alertname", ""),
        labels=dict(alert.labels),
        annotations=dict(alert.annotations),
        status=alert.status,
        fingerprint=alert.fingerprint or None,
        starts_at=alert.startsAt.timestamp() if alert.startsAt else None,
        # Alertmanager sends 0001-01-01 for "not ended": only a resolved alert has a real end.
        ends_at=alert.endsAt.timestamp() if alert.endsAt and alert.status == "resolved" else None,
    )


def request_for(
    route: Route, alert: AlertPayload, payload: WebhookPayload
) -> tuple[Request | None, str]:
    """The request a routed alert makes, or None with the reason it makes none."""
    if route.chain is not None:
        target = f"chain:{route.chain}"
    elif route.playbook is not None:
        target = route.playbook
    else:
        return None, route.description or "investigation only: no automatic remediation"
    parameters: dict[str, str] = {}
    for name, template in route.parameters.items():
        try:
            parameters[name] = render(template, alert, payload)
        except TemplateError as error:
            return None, f"parameter {name!r}: {error}"
    return (
        Request(
            playbook=target,
            parameters=parameters,
            source="webhook",
            alert=to_alert(alert),
            confidence=route.confidence,
            requires_confirmation=route.requires_confirmation,
        ),
        "",
    )


def find_route(settings: Settings, alert: AlertPayload) -> Route | None:
    return settings.route_for(alert.labels.get("alertname", ""))
