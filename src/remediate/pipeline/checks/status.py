"""Only firing alerts execute; a resolved notification is recorded, never acted on."""

from remediate.pipeline.checks import CheckInput
from remediate.pipeline.request import Verdict

name = "status"


def check(given: CheckInput) -> Verdict:
    alert = given.request.alert
    if alert is not None and alert.status != "firing":
        return Verdict.block(name, f"alert is {alert.status}, only firing alerts execute")
    return Verdict.allow()
