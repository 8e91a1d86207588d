"""A chain seen as one playbook, `chain:NAME`, so a webhook route (or anything else that
sends requests) can name a chain: the whole chain passes the gate once as a unit
(idempotency, limits, its own breaker, confidence), then each step passes it again."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pydantic import BaseModel

from remediate.config.models import Chain
from remediate.errors import RemediateError
from remediate.playbooks.base import Action, Context, Plan, Playbook, Result

if TYPE_CHECKING:
    from remediate.chains.executor import ChainRunner

PREFIX = "chain:"


class ChainPlaybook(Playbook):
    is_chain = True

    def __init__(self, chain: Chain, runner: Callable[[], ChainRunner], *, grace: float) -> None:
        self.chain = chain
        self.runner = runner
        self.name = PREFIX + chain.name  # type: ignore[misc]
        self.description = chain.description or f"chain {chain.name}"  # type: ignore[misc]
        self.risk = chain.risk_level  # type: ignore[misc]
        self.requires_confirmation = chain.requires_confirmation  # type: ignore[misc]
        # The chain enforces max_duration itself; the lease outlives it a little.
        self.timeout = chain.max_duration + grace

    def plan(self, ctx: Context, params: BaseModel) -> Plan:
        actions = tuple(
            Action(
                f"step {position}: {step.name}"
                + (f" {step.parameters}" if step.parameters else "")
                + (f" if {step.condition}" if step.condition else "")
            )
            for position, step in enumerate(self.chain.playbooks, 1)
        )
        return Plan(actions, summary=f"chain {self.chain.name}, strategy {self.chain.strategy}")

    def execute(self, ctx: Context, plan: Plan, params: BaseModel) -> Result:
        try:
            # The gate has confirmed the chain as a whole (requires_confirmation escalates).
            report = self.runner().run(self.chain.name, confirmed=True, source="chain")
        except RemediateError as error:
            return Result("failure", f"chain {self.chain.name}: {error.message}")
        steps = tuple(f"{step.playbook}: {step.status}" for step in report.steps)
        return Result(
            "success" if report.status == "success" else "failure",
            f"chain {self.chain.name} {report.status} (run {report.run.id})",
            steps,
            details={"chain_run_id": report.run.id, "advice": list(report.advice)},
        )
