"""Below the confidence threshold, or when confirmation is required, escalate to a human."""

from remediate.pipeline.checks import CheckInput
from remediate.pipeline.request import Verdict

name = "confidence"


def check(given: CheckInput) -> Verdict:
    request = given.request
    threshold = given.settings.safety.confidence_threshold
    if request.requires_confirmation and not (request.confirmed or request.forced):
        return Verdict.escalate(
            name,
            f"{request.playbook} requires confirmation "
            f"(confidence {request.confidence:g}%, threshold {threshold:g}%)",
        )
    if request.confidence < threshold and not (request.approved or request.forced):
        return Verdict.escalate(
            name, f"confidence {request.confidence:g}% is below the threshold {threshold:g}%"
        )
    return Verdict.allow()
