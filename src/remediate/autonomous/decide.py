"""Orient and decide: findings with a severity, and the decision matrix that maps them to
a playbook or chain.

The policy (DESIGN §4, the seed's phase 3): a forecast is acted on only when it is
critical, its confidence is above `min_confidence` (80) and the accuracy breaker
is closed; any finding only through a rule whose risk is at most `max_risk` (low).
What passes is a request with source `autonomous`; the gate still has the last word.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from remediate.autonomous.accuracy import Breaker
from remediate.autonomous.forecast import Forecast
from remediate.autonomous.samples import subject_of
from remediate.config.models import Autonomous, DecisionRule
from remediate.pipeline.request import Request

RISK_RANK = {"low": 0, "medium": 1, "high": 2}


@dataclass(frozen=True)
class Finding:
    """Something observed that may need an action."""

    kind: str  # forecast.critical | forecast.warning | container.down | alert.firing
    resource: str
    subject: str
    severity: Literal["critical", "warning", "high", "info"]
    confidence: float
    summary: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Decided:
    """A finding, what the matrix decided and, once acted on, what the gate said."""

    finding: Finding
    decision: Literal["act", "skip"]
    reason: str
    rule: DecisionRule | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    gate: dict[str, Any] | None = None

    @property
    def target(self) -> str | None:
        if self.rule is None:
            return None
        return self.rule.playbook or (f"chain:{self.rule.chain}" if self.rule.chain else None)

    def request(self) -> Request:
        assert self.rule is not None and self.rule.playbook is not None
        return Request(
            self.rule.playbook,
            parameters=dict(self.parameters),
            source="autonomous",
            confidence=self.rule.confidence,
        )

    def as_dict(self) -> dict[str, Any]:
        finding = self.finding
        return {
            "kind": finding.kind,
            "resource": finding.resource,
            "severity": finding.severity,
            "confidence": round(finding.confidence, 1),
            "summary": finding.summary,
            "decision": self.decision,
            "reason": self.reason,
            "playbook": self.rule.playbook if self.rule else None,
            "chain": self.rule.chain if self.rule else None,
            "parameters": dict(self.parameters),
            "gate": self.gate,
        }


def forecast_findings(forecasts: Iterable[Forecast]) -> list[Finding]:
    """Critical and warning forecasts become findings; ok ones do not."""
    findings: list[Finding] = []
    for item in forecasts:
        if item.severity == "ok":
            continue
        full = f", full in {_duration(item.seconds_to_full)}" if item.seconds_to_full else ""
        findings.append(
            Finding(
                kind=f"forecast.{item.severity}",
                resource=item.resource,
                subject=subject_of(item.resource),
                severity=item.severity,
                confidence=item.confidence,
                summary=(
                    f"{item.resource} at {item.current:.1f}%, "
                    f"{item.trend_per_day:+.2f} points/day, "
                    f"{item.predicted:.1f}% by the horizon{full} "
                    f"(confidence {item.confidence:.0f}%)"
                ),
                data=item.as_dict(),
            )
        )
    return findings


def _duration(seconds: float | None) -> str:
    from remediate.autonomous.forecast import human_duration

    return human_duration(seconds) or "-"


def rule_for(finding: Finding, rules: Sequence[DecisionRule]) -> DecisionRule | None:
    for rule in rules:
        if rule.finding == finding.kind and fnmatch.fnmatchcase(finding.resource, rule.resource):
            return rule
    return None


def decide(finding: Finding, config: Autonomous, breaker: Breaker) -> Decided:
    """Apply the matrix and the autonomous policy to one finding."""
    rule = rule_for(finding, config.decisions)
    if finding.kind.startswith("forecast.") and finding.kind != "forecast.critical":
        return Decided(finding, "skip", "only critical forecasts are acted on", rule)
    if rule is None:
        return Decided(finding, "skip", "no rule in autonomous.decisions matches it")
    if RISK_RANK[rule.risk] > RISK_RANK[config.max_risk]:
        return Decided(
            finding,
            "skip",
            f"the rule's risk {rule.risk} is above autonomous.max_risk {config.max_risk}",
            rule,
        )
    if finding.kind.startswith("forecast."):
        if finding.confidence <= config.min_confidence:
            return Decided(
                finding,
                "skip",
                f"forecast confidence {finding.confidence:.0f}% is not above "
                f"{config.min_confidence:g}%",
                rule,
            )
        if breaker.open:
            return Decided(finding, "skip", f"accuracy breaker open: {breaker.reason}", rule)
    parameters = {
        name: finding.subject if value == "{subject}" else value
        for name, value in rule.parameters.items()
    }
    if any(value == "" for value in parameters.values()):
        return Decided(finding, "skip", "the finding has no subject for {subject}", rule)
    target = rule.playbook or f"chain {rule.chain}"
    return Decided(
        finding,
        "act",
        f"rule {rule.finding} on {rule.resource} -> {target} (confidence {rule.confidence:g}%, "
        f"risk {rule.risk})",
        rule,
        parameters,
    )
