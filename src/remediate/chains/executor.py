"""Run a chain: pre-flight, then each step through the gate, with conditions, per-step
timeouts, the chain's max_duration, its failure strategy, rollback and resume.

    runner = ChainRunner(settings, store, registry, pipeline, clock=clock)
    report = runner.run("database-health", confirmed=True)
    report.status, [(step.playbook, step.status) for step in report.steps]

Failure handling, per step that did not succeed (failed, timed out, blocked or
escalated by the gate):
- `on_failure: skip` ignores it: the chain goes on and the run can still succeed;
- `on_failure: continue` goes on, but the run ends as failure;
- `on_failure: abort` stops the chain now (run `aborted`);
- no on_failure: the chain's strategy decides — `continue-on-error` goes on,
  `stop-on-failure` stops, `rollback-on-failure` stops and calls `rollback` of the
  steps that succeeded, newest first, reporting each that could not be undone.
A stop for any reason under `rollback-on-failure` rolls back.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from remediate.chains import records
from remediate.chains.conditions import Condition, FactSource
from remediate.chains.facts import FAILED_STEP, SystemFacts
from remediate.chains.records import RunRow, RunSpec, StepDetail, StepRow
from remediate.clock import Clock
from remediate.config.models import Chain, ChainStep, Settings
from remediate.errors import RefusedError, RemediateError, UsageError, close_matches
from remediate.pipeline.audit import entry
from remediate.pipeline.pipeline import Pipeline
from remediate.pipeline.request import Request, Source
from remediate.playbooks.base import Action, Context, Impact, Result
from remediate.playbooks.registry import Registry
from remediate.store import Store
from remediate.store.store import owner_id

__all__ = ["ChainRunner", "DryRun", "Preflight", "RunReport", "StepPreview"]

FactsFactory = Callable[[Mapping[str, str]], FactSource]


@dataclass(frozen=True)
class Preflight:
    """`errors` are config problems (exit 2), `problems` refuse the run (exit 3)."""

    errors: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class StepPreview:
    position: int
    playbook: str
    parameters: Mapping[str, Any]
    timeout: float | None
    condition: str | None
    holds: bool | None  # None: no condition, or it reads steps that have not run
    observed: str | None
    gate: str  # execute | block | escalate | error
    reason: str
    plan: tuple[Action, ...] = ()
    target: str = "-"


@dataclass(frozen=True)
class DryRun:
    chain: Chain
    preflight: Preflight
    steps: tuple[StepPreview, ...]


@dataclass(frozen=True)
class RunReport:
    run: RunRow
    advice: tuple[str, ...] = field(default_factory=tuple)

    @property
    def status(self) -> str:
        return self.run.status

    @property
    def steps(self) -> tuple[StepRow, ...]:
        return self.run.steps


class ChainRunner:
    """Runs chains through the pipeline and keeps their state in the store."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        registry: Registry,
        pipeline: Pipeline,
        *,
        clock: Clock,
        facts: FactsFactory | None = None,
        owner: str | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.registry = registry
        self.pipeline = pipeline
        self.clock = clock
        self.facts = facts or (lambda steps: SystemFacts(store=store, clock=clock, steps=steps))
        self.owner = owner or owner_id()

    # --- lookup and pre-flight ----------------------------------------------------------

    def chain(self, name: str) -> Chain:
        for chain in self.settings.chains:
            if chain.name == name:
                return chain
        known = [chain.name for chain in self.settings.chains]
        raise UsageError(
            f"unknown chain {name!r}{close_matches(name, known)} (chains: {', '.join(known)})"
        )

    def _step_timeout(self, step: ChainStep) -> float | None:
        if step.name not in self.registry:
            return step.timeout
        own = self.registry.get(step.name).timeout
        return min(step.timeout, own) if step.timeout else own

    def preflight(self, chain: Chain, *, confirmed: bool) -> Preflight:
        """Playbooks exist and parameters validate; the system is stable; timeouts fit."""
        errors: list[str] = []
        problems: list[str] = []
        warnings: list[str] = []
        for position, step in enumerate(chain.playbooks, 1):
            where = f"step {position} ({step.name})"
            if step.name not in self.registry:
                errors.append(
                    f"{where}: playbook {step.name!r} is not installed"
                    f"{close_matches(step.name, self.registry.names())}"
                )
                continue
            playbook = self.registry.get(step.name)
            try:
                playbook.parse_parameters(step.parameters)
            except UsageError as error:
                errors.append(f"{where}: {error.message}")
            if playbook.requires_confirmation and not confirmed:
                warnings.append(
                    f"{where} requires confirmation: it will escalate unless the chain runs "
                    "with --yes"
                )
        timeouts = [self._step_timeout(step) for step in chain.playbooks]
        total = sum(timeout for timeout in timeouts if timeout is not None)
        if total > chain.max_duration:
            warnings.append(
                f"the steps may take up to {total:g}s, more than max_duration "
                f"{chain.max_duration:g}s: later steps get only what is left"
            )
        paused = self.store.flag("paused")
        if paused:
            reason = paused.get("reason") if isinstance(paused, dict) else None
            problems.append(
                "remediation is paused" + (f": {reason}" if reason else "") + " (remediate resume)"
            )
        facts = self.facts({})
        for text in chain.preflight:
            evaluation = Condition.parse(text).evaluate(facts)
            if not evaluation.holds:
                problems.append(f"pre-flight check {text!r} does not hold: {evaluation.explain()}")
        return Preflight(tuple(errors), tuple(problems), tuple(warnings))

    def _require(self, preflight: Preflight) -> None:
        if preflight.errors:
            from remediate.errors import ConfigError

            raise ConfigError("; ".join(preflight.errors), field="chains")
        if preflight.problems:
            raise RefusedError("pre-flight refused the chain: " + "; ".join(preflight.problems))

    # --- dry run ------------------------------------------------------------------------

    def dry_run(self, chain: Chain, *, confirmed: bool = False) -> DryRun:
        """Every step's plan and gate verdict now, and which conditions hold now."""
        preflight = self.preflight(chain, confirmed=confirmed)
        facts = self.facts({})
        previews: list[StepPreview] = []
        for position, step in enumerate(chain.playbooks, 1):
            holds: bool | None = None
            observed: str | None = None
            if step.condition:
                condition = Condition.parse(step.condition)
                evaluation = condition.evaluate(facts)
                observed = evaluation.explain()
                if condition.steps():
                    observed += "; decided when it runs (it reads earlier steps)"
                else:
                    holds = evaluation.holds
            request = dataclasses.replace(
                self._request(step, run_id=None, timeout=self._step_timeout(step)),
                confirmed=confirmed,
                dry_run=True,
            )
            try:
                preview = self.pipeline.preview(request)
            except RemediateError as error:
                previews.append(
                    StepPreview(
                        position,
                        step.name,
                        step.parameters,
                        step.timeout,
                        step.condition,
                        holds,
                        observed,
                        "error",
                        error.message,
                    )
                )
                continue
            except Exception as error:  # a playbook whose plan crashes: shown, never raised
                reason = f"plan failed: {type(error).__name__}: {error}"
                previews.append(
                    StepPreview(
                        position,
                        step.name,
                        step.parameters,
                        step.timeout,
                        step.condition,
                        holds,
                        observed,
                        "error",
                        reason,
                    )
                )
                continue
            verdict = preview.verdict
            previews.append(
                StepPreview(
                    position,
                    step.name,
                    step.parameters,
                    self._step_timeout(step),
                    step.condition,
                    holds,
                    observed,
                    {"allow": "execute"}.get(verdict.action, verdict.action),
                    verdict.reason or "all checks passed",
                    preview.plan.actions,
                    preview.target,
                )
            )
        return DryRun(chain, preflight, tuple(previews))

    # --- running ------------------------------------------------------------------------

    def run(self, name: str, *, confirmed: bool = False, source: Source = "manual") -> RunReport:
        """Pre-flight, record the run, execute the steps; the report has every step."""
        chain = self.chain(name)
        if chain.requires_confirmation and not confirmed:
            raise RefusedError(f"chain {chain.name} requires confirmation (add --yes)")
        self._require(self.preflight(chain, confirmed=confirmed))
        records.sweep(self.store, now=self.clock.now())
        now = self.clock.now()
        run_id = records.insert_run(
            self.store,
            spec=RunSpec(chain=chain, confirmed=confirmed),
            source=source,
            owner=self.owner,
            now=now,
            lease_expires_at=now + chain.max_duration + self.settings.safety.lease_grace_seconds,
        )
        return self._continue(run_id, chain, confirmed=confirmed, budget=chain.max_duration)

    def resume(self, run_id: int) -> RunReport:
        """Continue an interrupted run at its first unfinished step; finished ones stay done."""
        now = self.clock.now()
        records.sweep(self.store, now=now)
        self.store.sweep_interrupted(now=now)
        run = records.load_run(self.store, run_id)
        chain = run.spec.chain
        spent = sum(step.duration or 0.0 for step in run.steps if step.status != "interrupted")
        budget = max(chain.max_duration - spent, 0.0)
        records.claim_interrupted(
            self.store,
            run_id,
            owner=self.owner,
            lease_expires_at=now + budget + self.settings.safety.lease_grace_seconds,
        )
        return self._continue(run_id, chain, confirmed=run.spec.confirmed, budget=budget)

    def _request(self, step: ChainStep, *, run_id: int | None, timeout: float | None) -> Request:
        return Request(
            step.name,
            parameters=dict(step.parameters),
            source="chain",
            chain_run_id=run_id,
            timeout=timeout,
        )

    def _continue(self, run_id: int, chain: Chain, *, confirmed: bool, budget: float) -> RunReport:
        deadline = time.monotonic() + budget
        run = records.load_run(self.store, run_id)
        outcomes: dict[str, str] = {}  # playbook -> status of its latest step, for steps.X
        counted_failure = False
        for row in run.steps:
            if row.status in records.FINISHED_STEPS:
                outcomes[row.playbook] = row.status
                counted_failure |= row.status in FAILED_STEP and not row.detail.tolerated
        final: str | None = None
        stopped_at: int | None = None
        for row in run.steps:
            if row.status in records.FINISHED_STEPS:
                continue  # done before an interruption: never repeated
            step = chain.playbooks[row.position]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                final, stopped_at = "timeout", row.position
                break
            status, detail = self._step(run_id, row, step, chain, remaining, outcomes, confirmed)
            outcomes[step.name] = status
            if status not in FAILED_STEP:
                continue
            if status == "timeout" and deadline - time.monotonic() <= 0:
                final, stopped_at = "timeout", row.position
                break
            policy = (
                step.on_failure
                or {
                    "continue-on-error": "continue",
                    "stop-on-failure": "stop",
                    "rollback-on-failure": "stop",
                }[chain.strategy]
            )
            if policy == "skip":
                self._save(
                    run_id, row.position, status, detail.model_copy(update={"tolerated": True})
                )
                continue
            counted_failure = True
            if policy == "continue":
                continue
            final, stopped_at = ("aborted" if policy == "abort" else "failure"), row.position
            break
        if final is None:
            final = "failure" if counted_failure else "success"
        if stopped_at is not None and chain.strategy == "rollback-on-failure":
            self._rollback(run_id, chain, before=stopped_at)
        records.finish_run(self.store, run_id, status=final, now=self.clock.now())
        if self.pipeline.after_record is not None:  # refresh the metrics textfile
            self.pipeline.after_record()
        finished = records.load_run(self.store, run_id)
        return RunReport(finished, advice(finished))

    def _save(self, run_id: int, position: int, status: str, detail: StepDetail) -> None:
        records.update_step(self.store, run_id, position, status=status, detail=detail)

    def _step(
        self,
        run_id: int,
        row: StepRow,
        step: ChainStep,
        chain: Chain,
        remaining: float,
        outcomes: Mapping[str, str],
        confirmed: bool,
    ) -> tuple[str, StepDetail]:
        now = self.clock.now()
        detail = StepDetail(condition=step.condition)
        if step.condition:
            evaluation = Condition.parse(step.condition).evaluate(self.facts(outcomes))
            detail = detail.model_copy(update={"condition_observed": evaluation.explain()})
            if not evaluation.holds:
                detail = detail.model_copy(update={"summary": "skipped: condition is false"})
                records.update_step(
                    self.store,
                    run_id,
                    row.position,
                    status="skipped",
                    detail=detail,
                    started_at=now,
                    finished_at=now,
                )
                return "skipped", detail
        own = self._step_timeout(step)
        timeout = min(own, remaining) if own else remaining
        detail = detail.model_copy(update={"timeout_seconds": round(timeout, 3)})
        # Written before anything runs: a SIGKILL from here on leaves a `running` row.
        records.update_step(
            self.store, run_id, row.position, status="running", detail=detail, started_at=now
        )
        execution_id = self._reusable_execution(row)
        if execution_id is None:
            request = dataclasses.replace(
                self._request(step, run_id=run_id, timeout=timeout), confirmed=confirmed
            )
            decision = self.pipeline.decide(request)
            detail = detail.model_copy(
                update={"decision_id": decision.id, "gate_check": decision.check or None}
            )
            if decision.execution_id is None:
                status = "escalated" if decision.action == "escalate" else "blocked"
                detail = detail.model_copy(update={"summary": f"{status}: {decision.reason}"})
                self._finish_step(run_id, row.position, status, detail, None)
                return status, detail
            execution_id = decision.execution_id
            records.update_step(
                self.store,
                run_id,
                row.position,
                status="running",
                detail=detail,
                execution_id=execution_id,
            )
        stored = self.store.execution(execution_id) or {}
        if stored.get("status") == "queued":
            report = self.pipeline.execute(execution_id)
            status, summary = report.status, report.summary
        else:  # finished by another process while this run was dead: adopt its outcome
            status, summary = str(stored.get("status")), str(stored.get("summary") or "")
        if status == "skipped":
            status = "success" if "already running" not in summary else "failure"
        detail = detail.model_copy(update={"summary": summary})
        self._finish_step(run_id, row.position, status, detail, execution_id)
        return status, detail

    def _reusable_execution(self, row: StepRow) -> int | None:
        """On resume: an execution admitted for this step but never started (still queued), or
        one another process finished, is used as it is instead of asking the gate again."""
        if row.execution_id is None:
            return None
        stored = self.store.execution(row.execution_id)
        if stored is None or stored["status"] in ("running", "interrupted"):
            return None
        return row.execution_id

    def _finish_step(
        self,
        run_id: int,
        position: int,
        status: str,
        detail: StepDetail,
        execution_id: int | None,
    ) -> None:
        records.update_step(
            self.store,
            run_id,
            position,
            status=status,
            detail=detail,
            finished_at=self.clock.now(),
            execution_id=execution_id,
        )

    # --- rollback -----------------------------------------------------------------------

    def _rollback(self, run_id: int, chain: Chain, *, before: int) -> None:
        """Call `rollback` of each step that succeeded before `before`, newest first."""
        run = records.load_run(self.store, run_id)
        done = [row for row in run.steps if row.position < before and row.status == "success"]
        allowance = sum(self._step_timeout(chain.playbooks[row.position]) or 0 for row in done)
        records.extend_lease(
            self.store,
            run_id,
            lease_expires_at=self.clock.now()
            + allowance
            + self.settings.safety.lease_grace_seconds,
        )
        for row in reversed(done):
            step = chain.playbooks[row.position]
            started = time.monotonic()
            try:
                stored = (
                    self.store.execution_with_request(row.execution_id)
                    if row.execution_id
                    else None
                )
            except RemediateError as error:  # as before: this step not undone, the rest go on
                stored = None
                undo = _Undo(False, f"could not be undone: reading its run: {error.message}")
            else:
                undo = self._undo(step, row, stored)
            detail = row.detail.model_copy(update={"rollback": undo.text, "undone": undo.undone})
            records.update_step(
                self.store,
                run_id,
                row.position,
                status="rolled_back" if undo.undone else row.status,
                detail=detail,
            )
            seconds = time.monotonic() - started if undo.status is not None else None
            self.pipeline.write_audit(
                [_rollback_entry(run_id, chain.name, step, row, stored, undo, seconds, self.clock)]
            )

    def _undo(self, step: ChainStep, row: StepRow, stored: Mapping[str, Any] | None) -> _Undo:
        try:
            playbook = self.registry.get(step.name)
            params = playbook.parse_parameters(step.parameters)
        except RemediateError as error:
            return _Undo(False, f"could not be undone: {error.message}")
        timeout = self._step_timeout(step) or playbook.timeout
        ctx = Context(
            settings=self.settings,
            runner=self.pipeline.process_runner,
            clock=self.clock,
            deadline=time.monotonic() + timeout,
        )
        try:
            result = playbook.rollback(ctx, params, self._stored_result(row, stored))
        except Exception as error:  # a rollback bug is reported, never a crash mid-rollback
            text = f"could not be undone: rollback raised {type(error).__name__}: {error}"
            return _Undo(False, text, "error")
        if result is None:
            return _Undo(False, f"could not be undone: {step.name} has no rollback")
        if not result.ok:
            text = f"could not be undone: rollback {result.status}: {result.summary}"
            return _Undo(False, text, result.status, result)
        return _Undo(True, f"rolled back: {result.summary or 'done'}", result.status, result)

    def _stored_result(self, row: StepRow, stored: Mapping[str, Any] | None) -> Result:
        """The step's result as recorded, for the playbook's rollback to read."""
        if not stored:
            return Result("success", row.detail.summary)
        impacts = tuple(
            Impact(item["kind"], item["value"], item["subject"])
            for item in self.store.impacts_of(stored["id"])
        )
        return Result(
            stored["status"],
            stored["summary"] or "",
            tuple(stored["actions"] or ()),
            impacts,
            stored["root_cause"],
            stored["stdout"] or "",
            stored["stderr"] or "",
            stored["details"] or {},
        )

    # --- reading ------------------------------------------------------------------------

    def report(self, run_id: int) -> RunReport:
        records.sweep(self.store, now=self.clock.now())
        run = records.load_run(self.store, run_id)
        return RunReport(run, advice(run))


@dataclass(frozen=True)
class _Undo:
    """What became of one step's rollback: undone or not, what to say of it, and the
    rollback's own status (None when nothing ran, "error" when it raised) and result."""

    undone: bool
    text: str
    status: str | None = None
    result: Result | None = None


def _rollback_entry(
    run_id: int,
    chain: str,
    step: ChainStep,
    row: StepRow,
    stored: Mapping[str, Any] | None,
    undo: _Undo,
    seconds: float | None,
    clock: Clock,
) -> dict[str, Any]:
    """The audit line of a step the rollback tried to undo, beside the step's own
    execution line: what a rollback ran on the host is in the log, not only in the
    chain's record. Its ids, alert, parameters and confidence are the step's."""
    result = undo.result
    return entry(
        decision_id=stored["decision_id"] if stored else row.detail.decision_id,
        timestamp=clock.now(),
        source=stored["source"] if stored else "chain",
        playbook=step.name,
        alert=stored["alertname"] if stored else None,
        parameters=stored["parameters"] if stored else step.parameters,
        action="rollback",
        reason=f"chain {chain} run {run_id}: {undo.text}",
        confidence=float(stored["confidence"]) if stored else None,
        status=undo.status,
        execution_id=row.execution_id,
        stdout=result.stdout if result is not None else "",
        stderr=result.stderr if result is not None else "",
        duration_s=seconds,
        forced=bool(stored["forced"]) if stored else False,
    )


def advice(run: RunRow) -> tuple[str, ...]:
    """What to look at next, from the run's outcome."""
    hints: list[str] = []
    for step in run.steps:
        where = f"step {step.position + 1} ({step.playbook})"
        detail = step.detail
        if step.status == "escalated":
            hints.append(
                f"{where} waits for approval: remediate pending, then remediate approve ID"
            )
        elif step.status == "blocked":
            hints.append(f"{where} was refused by the gate ({detail.gate_check}): {detail.summary}")
        elif step.status in ("failure", "timeout"):
            tail = " (ignored: on_failure skip)" if detail.tolerated else ""
            hints.append(
                f"{where} {step.status}{tail}: remediate history --playbook {step.playbook}"
                + (f" (execution {step.execution_id})" if step.execution_id else "")
            )
        if detail.undone is False:
            hints.append(f"{where} {detail.rollback}: check it by hand")
    if run.status == "interrupted":
        hints.append(f"continue where it stopped: remediate chain resume {run.id}")
    if run.status == "timeout":
        hints.append(
            f"the chain hit max_duration {run.spec.chain.max_duration:g}s: raise it or shorten "
            "step timeouts"
        )
    if not hints and run.status == "success":
        hints.append("nothing to do: every step succeeded or was skipped by its condition")
    return tuple(hints)
