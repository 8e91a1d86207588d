"""The same alert key within the window executes once.

10:00:00 exec · 10:02:30 blocked · 10:06:00 exec (window 5 min, counted from
the admitted execution, so blocked repeats do not extend it).
"""

from remediate.clock import format_time
from remediate.pipeline.checks import CheckInput
from remediate.pipeline.request import Verdict

name = "idempotency"


def check(given: CheckInput) -> Verdict:
    if given.idempotency_key is None or given.request.forced:
        return Verdict.allow()
    window = given.settings.safety.idempotency.window_minutes * 60
    last = given.view.last_admitted_with_key(idempotency_key=given.idempotency_key)
    if last is not None and given.now - last < window:
        minutes = given.settings.safety.idempotency.window_minutes
        return Verdict.block(
            name,
            f"same alert already handled at {format_time(last)} "
            f"(within {minutes:g} min idempotency window)",
        )
    return Verdict.allow()
