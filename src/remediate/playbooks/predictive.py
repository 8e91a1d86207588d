"""predictive-maintenance: forecast every resource, store the forecasts (to score them
later), and on a critical, confident forecast submit the preemptive playbook through
the gate (disk-cleanup for disks by default; `autonomous.decisions` per resource).

    remediate run predictive-maintenance --dry-run
    remediate run predictive-maintenance -p resource='disk:*' -p horizon_days=3

The plan forecasts from the stored history and a fresh sample, writes nothing and
lists what it would submit. Execute samples again, scores matured forecasts, stores
the new ones and submits each preemptive request with source `autonomous`: the gate
decides, so a cooldown or an open breaker is respected and shown in the result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from remediate.config.models import Settings
from remediate.playbooks.base import Action, Context, Plan, Playbook, Result, Risk
from remediate.system.process import Completed

__all__ = ["PredictiveMaintenance", "PredictiveParameters"]


class PredictiveParameters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    resource: str = Field(
        "*",
        pattern=r"^[A-Za-z0-9_./:*?@-]{1,256}$",
        description="which resources to forecast: a name or pattern (disk:*, memory)",
    )
    horizon_days: float | None = Field(
        None, gt=0, le=365, description="forecast this far ahead (default autonomous.horizon_days)"
    )


class _ContextRunner:
    """The playbook's commands go through `ctx.run`, which honours its deadline."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def __call__(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        input: str | None = None,
    ) -> Completed:
        return self.ctx.run(argv, timeout=timeout, env=env, cwd=cwd)


class PredictiveMaintenance(Playbook):
    """Forecast resource exhaustion and clean up ahead of it."""

    name: ClassVar[str] = "predictive-maintenance"
    description: ClassVar[str] = (
        "Forecast disk, memory, swap and container memory use; store each forecast to score "
        "its accuracy; on a critical one submit the preemptive playbook through the gate"
    )
    risk: ClassVar[Risk] = "low"
    requires_confirmation: ClassVar[bool] = False
    timeout: float = 120.0
    Parameters = PredictiveParameters

    @classmethod
    def from_settings(cls, settings: Settings) -> PredictiveMaintenance:
        return cls()

    def target(self, params: BaseModel) -> str:
        assert isinstance(params, PredictiveParameters)
        return params.resource

    def _forecast(self, ctx: Context, params: PredictiveParameters, *, record: bool) -> Any:
        from remediate.autonomous.predict import predict
        from remediate.store import Store

        state = ctx.settings.state
        store = Store.open(state.resolved_url(), busy_timeout=state.busy_timeout_seconds)
        try:
            prediction = predict(
                ctx.settings,
                store,
                _ContextRunner(ctx),
                now=ctx.clock.now(),
                record=record,
                horizon_seconds=params.horizon_days * 86400 if params.horizon_days else None,
                only=params.resource,
            )
        finally:
            store.close()
        return prediction

    def _decisions(self, ctx: Context, prediction: Any) -> list[Any]:
        from remediate.autonomous.decide import decide, forecast_findings

        config = ctx.settings.autonomous
        decided = [
            decide(finding, config, prediction.breaker)
            for finding in forecast_findings(prediction.forecasts)
        ]
        for item in decided:
            if item.decision == "act" and item.rule is not None and item.rule.chain:
                item.decision = "skip"
                item.reason = f"chain {item.rule.chain}: chains are run by `remediate observe`"
        return decided

    def plan(self, ctx: Context, params: BaseModel) -> Plan:
        """The forecast from the history and a fresh sample, and what it would submit."""
        assert isinstance(params, PredictiveParameters)
        prediction = self._forecast(ctx, params, record=False)
        decided = self._decisions(ctx, prediction)
        actions = [
            Action(
                f"forecast {len(prediction.forecasts)} resource(s) from the {prediction.source} "
                "and store each forecast"
            )
        ]
        for item in prediction.forecasts:
            if item.severity != "ok":
                actions.append(Action(_describe(item)))
        for entry in decided:
            if entry.decision == "act":
                rule = entry.rule
                assert rule is not None
                parameters = " ".join(f"-p {k}={v}" for k, v in entry.parameters.items())
                actions.append(
                    Action(
                        f"submit {rule.playbook} {parameters} through the gate "
                        f"(source autonomous, confidence {rule.confidence:g}%)".replace("  ", " ")
                    )
                )
            else:
                actions.append(Action(f"no action on {entry.finding.resource}: {entry.reason}"))
        critical = sum(1 for item in prediction.forecasts if item.severity == "critical")
        return Plan(
            tuple(actions),
            summary=f"{len(prediction.forecasts)} forecasts, {critical} critical",
            data={
                "forecasts": [item.as_dict() for item in prediction.forecasts],
                "decisions": [entry.as_dict() for entry in decided],
                "breaker": prediction.breaker.as_dict(),
            },
        )

    def execute(self, ctx: Context, plan: Plan, params: BaseModel) -> Result:
        assert isinstance(params, PredictiveParameters)
        prediction = self._forecast(ctx, params, record=True)
        decided = self._decisions(ctx, prediction)
        actions = [f"stored {len(prediction.forecasts)} forecast(s)"]
        if prediction.scored:
            actions.append(f"scored {len(prediction.scored)} matured forecast(s)")
        submitted: list[str] = []
        for entry in decided:
            if entry.decision != "act":
                actions.append(f"no action on {entry.finding.resource}: {entry.reason}")
                continue
            if ctx.submit is None:
                entry.gate = {"action": "none", "reason": "no pipeline to submit to"}
                actions.append(f"{entry.target} not submitted: no pipeline to submit to")
                continue
            decision, report = ctx.submit(entry.request())
            entry.gate = {
                "action": decision.action,
                "check": decision.check or None,
                "reason": decision.reason,
                "decision_id": decision.id,
            }
            outcome = decision.action
            if report is not None:
                entry.gate.update(execution_id=report.execution_id, status=report.status)
                outcome = f"{report.status}: {report.summary}"
            actions.append(f"submitted {entry.target} for {entry.finding.resource}: {outcome}")
            submitted.append(f"{entry.target} ({decision.action})")
        critical = [item.resource for item in prediction.forecasts if item.severity == "critical"]
        summary = f"{len(prediction.forecasts)} forecasts, {len(critical)} critical"
        if critical:
            summary += f" ({', '.join(critical)})"
        if submitted:
            summary += f"; submitted {', '.join(submitted)}"
        return Result(
            "success",
            summary,
            tuple(actions),
            stdout="\n".join(_describe(item) for item in prediction.forecasts),
            stderr="\n".join(prediction.problems),
            details={**prediction.as_dict(), "decisions": [e.as_dict() for e in decided]},
        )


def _describe(item: Any) -> str:
    full = f", full in {item.as_dict()['time_to_full']}" if item.seconds_to_full else ""
    return (
        f"{item.resource}: {item.current:.1f}% now, {item.trend_per_day:+.2f} points/day, "
        f"{item.predicted:.1f}% by the horizon{full} — {item.severity}, "
        f"confidence {item.confidence:.0f}%"
    )
