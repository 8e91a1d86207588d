"""Gate checks, one module each, run in the order of DESIGN §4.

status -> service overrides -> pause -> idempotency -> rate limits -> circuit
breaker -> confidence / confirmation. Route lookup happens in the webhook
trigger before a request exists. Each check answers allow, block(reason) or
escalate(reason); the first answer that is not allow decides.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from remediate.config.models import Settings
from remediate.pipeline.request import Request, Verdict
from remediate.store import GateView


@dataclass(frozen=True)
class CheckInput:
    request: Request
    settings: Settings
    view: GateView
    now: float
    target: str
    idempotency_key: str | None
    risk: str


# A check is a function: the first verdict that is not allow decides.
Check = Callable[[CheckInput], Verdict]


def default_checks() -> list[Check]:
    from remediate.pipeline.checks import (
        circuit_breaker,
        confidence,
        idempotency,
        overrides,
        pause,
        rate_limit,
        status,
    )

    return [
        status.check,
        overrides.check,
        pause.check,
        idempotency.check,
        rate_limit.check,
        circuit_breaker.check,
        confidence.check,
    ]
