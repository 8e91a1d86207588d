"""Per playbook: N consecutive failures open the breaker for the reset timeout.

After the timeout one trial run is allowed (half-open): a success closes it,
a failure opens it again. Derived from the recorded executions, nothing else.
10:00 F · 10:15 F · 10:30 F (opens) · 10:45 blocked · 11:00 trial allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from remediate.config.models import CircuitBreaker
from remediate.pipeline.checks import CheckInput
from remediate.pipeline.request import Verdict
from remediate.store import GateView
from remediate.store.store import FAILED

name = "circuit_breaker"


@dataclass(frozen=True)
class BreakerState:
    state: Literal["closed", "open", "half_open"]
    consecutive_failures: int
    opened_at: float | None = None
    reopens_at: float | None = None


def state(view: GateView, playbook: str, settings: CircuitBreaker, now: float) -> BreakerState:
    outcomes = view.recent_outcomes(playbook=playbook, limit=settings.failure_threshold)
    failures = 0
    for outcome in outcomes:
        if outcome.status not in FAILED:
            break
        failures += 1
    if failures < settings.failure_threshold:
        return BreakerState("closed", failures)
    # The newest failure (re)opened it: after a failed trial it opens again from there.
    newest = outcomes[0]
    opened_at = newest.finished_at or newest.admitted_at
    reopens_at = opened_at + settings.reset_timeout_minutes * 60
    if now < reopens_at:
        return BreakerState("open", failures, opened_at, reopens_at)
    return BreakerState("half_open", failures, opened_at, reopens_at)


def check(given: CheckInput) -> Verdict:
    if given.request.forced:
        return Verdict.allow()
    playbook = given.request.playbook
    current = state(given.view, playbook, given.settings.safety.circuit_breaker, given.now)
    if current.state == "open":
        assert current.reopens_at is not None
        return Verdict.block(
            name,
            f"circuit open: {playbook} failed {current.consecutive_failures} times in a row; "
            f"trial allowed in {(current.reopens_at - given.now) / 60:.0f} min",
        )
    if current.state == "half_open" and given.view.count_unfinished(playbook=playbook):
        return Verdict.block(name, f"circuit half-open: a trial run of {playbook} is under way")
    return Verdict.allow()
