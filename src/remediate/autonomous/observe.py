"""The autonomous loop: observe, orient, decide, act — once per call (`remediate observe`).

Observe: samples and forecasts (predict.py), the state of declared containers,
alerts firing in Alertmanager. Orient: findings with a severity. Decide: the
decision matrix (decide.py). Act: with `act=True`, each decision becomes a request
with source `autonomous` through the pipeline, so the gate's shared state (cooldown,
idempotency, rate limits, breakers, pause) skips what another trigger just handled;
with `dry_run=True` the gate is only asked (nothing runs, nothing is recorded).

    cycle = Loop(settings, store, pipeline=runtime.pipeline, clock=clock).run(act=True)
    cycle.as_dict()["decisions"]
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from remediate.autonomous.decide import Decided, Finding, decide, forecast_findings
from remediate.autonomous.predict import Prediction, predict
from remediate.autonomous.samples import writing
from remediate.clock import Clock
from remediate.config.models import Settings
from remediate.errors import RemediateError
from remediate.pipeline.pipeline import Pipeline
from remediate.store import Store
from remediate.store import tables as t
from remediate.system.process import ProcessRunner, run_process

COMMAND_TIMEOUT_SECONDS = 30.0
PODMAN_PS = ("podman", "ps", "-a", "--format", "json")
Mode = Literal["observe", "dry-run", "act"]


@dataclass
class Cycle:
    id: str
    at: float
    mode: Mode
    prediction: Prediction
    containers: list[dict[str, str]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[Decided] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        from remediate.clock import format_time

        return {
            "cycle": self.id,
            "at": format_time(self.at),
            "mode": self.mode,
            "observations": {
                "source": self.prediction.source,
                "sampled": len(self.prediction.sampled),
                "forecasts": [item.as_dict() for item in self.prediction.forecasts],
                "scored": [item.as_dict() for item in self.prediction.scored],
                "accuracy": {k: round(v, 3) for k, v in self.prediction.accuracy.items()},
                "breaker": self.prediction.breaker.as_dict(),
                "containers": self.containers,
                "alerts": self.alerts,
            },
            "decisions": [item.as_dict() for item in self.decisions],
            "problems": self.prediction.problems + self.problems,
        }


class Loop:
    """One observe-orient-decide-act cycle per `run`; everything outside comes in injected."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        clock: Clock,
        pipeline: Pipeline | None = None,
        runner: ProcessRunner = run_process,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.pipeline = pipeline
        self.runner = runner

    def run(self, *, act: bool = False, dry_run: bool = False) -> Cycle:
        mode: Mode = "dry-run" if dry_run else "act" if act else "observe"
        now = self.clock.now()
        prediction = predict(self.settings, self.store, self.runner, now=now, record=not dry_run)
        cycle = Cycle(uuid.uuid4().hex, now, mode, prediction)
        findings = forecast_findings(prediction.forecasts)
        findings += self._containers(cycle)
        findings += self._alerts(cycle)
        config = self.settings.autonomous
        cycle.decisions = [decide(finding, config, prediction.breaker) for finding in findings]
        for decided in cycle.decisions:
            if decided.decision == "act":
                decided.gate = self._act(decided, mode)
        if not dry_run:
            self._record(cycle)
        return cycle

    # --- observe ------------------------------------------------------------------------

    def _containers(self, cycle: Cycle) -> list[Finding]:
        """Declared podman services whose container is not running."""
        declared = [s for s in self.settings.services if s.manager == "podman"]
        if not declared or shutil.which("podman") is None:
            return []
        completed = self.runner(PODMAN_PS, timeout=COMMAND_TIMEOUT_SECONDS)
        command = " ".join(PODMAN_PS)
        if not completed.ok:
            said = (completed.stderr or completed.stdout).strip().splitlines()
            cycle.problems.append(f"{command} failed: {said[-1] if said else completed.returncode}")
            return []
        try:
            states = parse_podman_ps(completed.stdout)
        except ValueError as error:
            cycle.problems.append(f"cannot parse the output of {command}: {error}")
            return []
        findings: list[Finding] = []
        for service in declared:
            name = service.container or service.name
            state = states.get(name, "missing")
            cycle.containers.append({"service": service.name, "container": name, "state": state})
            if state != "running":
                findings.append(
                    Finding(
                        "container.down",
                        f"container:{name}",
                        service.name,
                        "high",
                        100.0,
                        f"container {name} of service {service.name} is {state}",
                    )
                )
        return findings

    def _alerts(self, cycle: Cycle) -> list[Finding]:
        """Alerts firing now in Alertmanager (active, not silenced, not inhibited)."""
        endpoint = self.settings.alertmanager
        if not endpoint.url:
            return []
        from remediate.autonomous.http import get_json

        try:
            answer = get_json(
                endpoint.url,
                "/api/v2/alerts",
                {"active": "true", "silenced": "false", "inhibited": "false"},
                timeout=endpoint.timeout_seconds,
            )
            alerts = parse_alerts(answer)
        except RemediateError as error:
            cycle.problems.append(f"Alertmanager: {error.message}")
            return []
        except ValueError as error:
            cycle.problems.append(f"Alertmanager: cannot parse /api/v2/alerts: {error}")
            return []
        findings: list[Finding] = []
        for labels in alerts:
            name = labels.get("alertname", "")
            subject = labels.get("name") or labels.get("service") or labels.get("container") or ""
            cycle.alerts.append({"alertname": name, "labels": labels})
            findings.append(
                Finding(
                    "alert.firing",
                    f"alert:{name}",
                    subject,
                    "critical" if labels.get("severity") == "critical" else "warning",
                    100.0,
                    f"alert {name} firing" + (f" for {subject}" if subject else ""),
                    {"labels": labels},
                )
            )
        return findings

    # --- act ----------------------------------------------------------------------------

    def _act(self, decided: Decided, mode: Mode) -> dict[str, Any] | None:
        rule = decided.rule
        assert rule is not None
        if mode == "observe":
            return {"action": "none", "reason": "observe only: add --act to submit it"}
        if self.pipeline is None:
            return {"action": "none", "reason": "no pipeline to submit to"}
        try:
            if rule.chain is not None:
                return self._chain(rule.chain, mode)
            if mode == "dry-run":
                preview = self.pipeline.preview(decided.request())
                verdict = preview.verdict
                return {
                    "action": {"allow": "execute"}.get(verdict.action, verdict.action),
                    "check": verdict.check or None,
                    "reason": verdict.reason or "all checks passed",
                    "target": preview.target,
                    "plan": [action.render() for action in preview.plan.actions],
                    "dry_run": True,
                }
            decision, report = self.pipeline.run(decided.request())
        except RemediateError as error:
            return {"action": "error", "reason": error.message}
        gate: dict[str, Any] = {
            "action": decision.action,
            "check": decision.check or None,
            "reason": decision.reason,
            "decision_id": decision.id,
            "target": decision.target,
        }
        if report is not None:
            gate.update(
                execution_id=report.execution_id, status=report.status, summary=report.summary
            )
        return gate

    def _chain(self, name: str, mode: Mode) -> dict[str, Any]:
        assert self.pipeline is not None
        from remediate.chains.executor import ChainRunner

        runner = ChainRunner(
            self.settings,
            self.store,
            self.pipeline.registry,
            self.pipeline,
            clock=self.clock,
        )
        if mode == "dry-run":
            return {"action": "dry_run", "reason": f"see `remediate chain run {name} --dry-run`"}
        report = runner.run(name, source="autonomous")
        return {"action": "execute", "chain": name, "status": report.status}

    # --- record -------------------------------------------------------------------------

    def _record(self, cycle: Cycle) -> None:
        rows: list[dict[str, Any]] = [
            {
                "created_at": cycle.at,
                "cycle": cycle.id,
                "kind": "cycle",
                "resource": "-",
                "severity": "info",
                "confidence": 100.0,
                "summary": (
                    f"{len(cycle.prediction.sampled)} samples, "
                    f"{len(cycle.prediction.forecasts)} forecasts, "
                    f"{len(cycle.decisions)} findings ({cycle.mode})"
                ),
                "decision": "none",
                "reason": cycle.prediction.breaker.reason,
                "playbook": None,
                "decision_id": None,
                "data": {"problems": cycle.prediction.problems + cycle.problems},
            }
        ]
        for decided in cycle.decisions:
            gate = decided.gate or {}
            rows.append(
                {
                    "created_at": cycle.at,
                    "cycle": cycle.id,
                    "kind": decided.finding.kind,
                    "resource": decided.finding.resource,
                    "severity": decided.finding.severity,
                    "confidence": decided.finding.confidence,
                    "summary": decided.finding.summary,
                    "decision": decided.decision,
                    "reason": decided.reason,
                    "playbook": decided.target,
                    "decision_id": gate.get("decision_id"),
                    "data": {"parameters": decided.parameters, "gate": decided.gate},
                }
            )
        with writing(self.store) as connection:
            connection.execute(t.observations.insert(), rows)


def parse_podman_ps(text: str) -> dict[str, str]:
    """Container name -> state from `podman ps -a --format json` (podman 4)."""
    data = json.loads(text) if text.strip() else []
    if not isinstance(data, list):
        raise ValueError("expected a JSON array")
    states: dict[str, str] = {}
    for item in data:
        if not isinstance(item, dict) or not isinstance(item.get("Names"), list):
            raise ValueError(f"an entry without Names: {str(item)[:120]}")
        for name in item["Names"]:
            states[str(name)] = str(item.get("State", "unknown"))
    return states


def parse_alerts(answer: Any) -> list[dict[str, str]]:
    """Labels of each active alert in Alertmanager's /api/v2/alerts answer."""
    if not isinstance(answer, list):
        raise ValueError("expected a JSON array")
    alerts: list[dict[str, str]] = []
    for item in answer:
        labels = item.get("labels") if isinstance(item, dict) else None
        if not isinstance(labels, dict):
            raise ValueError(f"an alert without labels: {str(item)[:120]}")
        state = (item.get("status") or {}).get("state", "active")
        if state == "active":
            alerts.append({str(k): str(v) for k, v in labels.items()})
    return alerts


def recent(store: Store, *, limit: int = 50) -> Sequence[dict[str, Any]]:
    """The latest observations, newest first (for `observe --history`-like views and tests)."""
    import sqlalchemy as sa

    o = t.observations
    with store.reading() as connection:
        rows = connection.execute(sa.select(o).order_by(o.c.id.desc()).limit(limit)).mappings()
        return [dict(row) for row in rows]
