"""Services in the override list are never remediated automatically (critical infrastructure)."""

from remediate.pipeline.checks import CheckInput
from remediate.pipeline.request import Verdict

name = "service_override"


def check(given: CheckInput) -> Verdict:
    request = given.request
    if not request.automatic:
        return Verdict.allow()
    protected = set(given.settings.safety.service_overrides)
    candidates: list[str] = []
    if request.alert is not None:
        candidates += [
            request.alert.labels[label]
            for label in given.settings.safety.override_labels
            if label in request.alert.labels
        ]
    service = request.parameters.get("service")
    if isinstance(service, str):
        candidates.append(service)
    for candidate in candidates:
        if candidate in protected:
            return Verdict.block(name, f"service {candidate} is in the override list")
    return Verdict.allow()
