"""`remediate pause` stops every trigger until `resume`; only `run --force` passes."""

from remediate.pipeline.checks import CheckInput
from remediate.pipeline.request import Verdict

name = "pause"


def check(given: CheckInput) -> Verdict:
    paused = given.view.flag("paused")
    if paused and not given.request.forced:
        reason = paused.get("reason") if isinstance(paused, dict) else None
        suffix = f": {reason}" if reason else ""
        return Verdict.block(name, f"remediation is paused{suffix} (remediate resume)")
    return Verdict.allow()
