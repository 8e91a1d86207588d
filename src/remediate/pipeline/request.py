"""A request to run a playbook, from any trigger, and the gate's verdict on it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Source = Literal["manual", "webhook", "schedule", "autonomous", "chain"]
AUTOMATIC_SOURCES = frozenset({"webhook", "schedule", "autonomous", "chain"})


@dataclass(frozen=True)
class Alert:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    status: Literal["firing", "resolved"] = "firing"
    fingerprint: str | None = None
    starts_at: float | None = None
    ends_at: float | None = None


@dataclass(frozen=True)
class Request:
    playbook: str
    parameters: Mapping[str, Any] = field(default_factory=dict)
    source: Source = "manual"
    alert: Alert | None = None
    confidence: float = 100.0
    requires_confirmation: bool = False
    confirmed: bool = False  # `--yes`, a schedule's standing confirmation, or an approval
    approved: bool = False  # an approval lifts only the confidence check
    forced: bool = False
    dry_run: bool = False
    chain_run_id: int | None = None
    # Shorter than the playbook's own timeout when set: a chain step's timeout.
    timeout: float | None = None

    @property
    def automatic(self) -> bool:
        return self.source in AUTOMATIC_SOURCES


Action = Literal["execute", "block", "escalate", "dry_run", "record"]


@dataclass(frozen=True)
class Verdict:
    action: Literal["allow", "block", "escalate"]
    check: str = ""
    reason: str = ""

    @classmethod
    def allow(cls) -> Verdict:
        return cls("allow")

    @classmethod
    def block(cls, check: str, reason: str) -> Verdict:
        return cls("block", check, reason)

    @classmethod
    def escalate(cls, check: str, reason: str) -> Verdict:
        return cls("escalate", check, reason)


@dataclass(frozen=True)
class Decision:
    """What the pipeline did with a request; `execution_id` is set when it was admitted."""

    id: int
    action: Action
    playbook: str
    reason: str
    check: str = ""
    execution_id: int | None = None
    request_id: int | None = None
    approval_id: int | None = None
    target: str = "-"


@dataclass(frozen=True)
class Note:
    """A decision that needs no gate: a resolved alert, no route, investigation only."""

    source: Source
    alert: Alert | None
    action: Literal["block", "record"]
    check: str
    reason: str
    playbook: str | None = None
    confidence: float = 0.0
