"""Request -> Gate -> Runner -> Record: the one path every trigger takes.

    pipeline = Pipeline(settings, store, registry, clock=SystemClock())
    decision = pipeline.decide(Request("disk-cleanup", source="webhook", ...))
    if decision.execution_id:
        report = pipeline.execute(decision.execution_id)

`decide` runs the gate and records the decision (and, when admitted, a queued
execution) in one serialized transaction; `execute` takes the lease, plans,
executes, verifies and records. The webhook answers after `decide`; the CLI
calls `run`, which does both.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from remediate.clock import Clock
from remediate.config.models import Settings
from remediate.errors import RemediateError, UsageError
from remediate.pipeline.audit import AuditLog, entry
from remediate.pipeline.checks import Check, CheckInput, default_checks
from remediate.pipeline.request import Decision, Note, Request, Verdict
from remediate.playbooks.base import Context, Plan, Playbook, PlaybookTimeout, Result, excerpt
from remediate.playbooks.registry import Registry
from remediate.store import GateView, Store
from remediate.store.store import owner_id
from remediate.system.process import ProcessRunner, run_process

log = logging.getLogger("remediate.pipeline")


@dataclass(frozen=True)
class Report:
    """An execution's outcome, after the record is written."""

    execution_id: int
    decision_id: int
    playbook: str
    status: str
    summary: str
    duration: float
    attempts: int
    result: Result | None = None


@dataclass(frozen=True)
class Preview:
    """What `--dry-run` shows: the gate's verdict now and the exact plan."""

    playbook: str
    target: str
    verdict: Verdict
    plan: Plan


def idempotency_key(request: Request, fields: tuple[str, ...]) -> str | None:
    if request.alert is None:
        return None
    labels = dict(request.alert.labels)
    labels.setdefault("alertname", request.alert.name)
    return "|".join(f"{name}={labels.get(name, '')}" for name in fields)


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        registry: Registry,
        *,
        clock: Clock,
        process_runner: ProcessRunner = run_process,
        checks: list[Check] | None = None,
        audit: AuditLog | None = None,
        after_record: Callable[[], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        notify: Callable[[str, str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.registry = registry
        self.clock = clock
        self.process_runner = process_runner
        self.checks = checks if checks is not None else default_checks()
        self._pure_checks = checks is None
        self.audit = audit or AuditLog(settings.state.resolved_audit_log())
        self.after_record = after_record
        self.sleep = sleep
        self.notify = notify

    # --- gate -------------------------------------------------------------------------

    def _resolve(self, request: Request) -> tuple[Request, Playbook, BaseModel, str]:
        """Find the playbook and validate the parameters; its own confirmation need joins in."""
        playbook = self.registry.get(request.playbook)
        params = playbook.parse_parameters(request.parameters)
        if playbook.requires_confirmation and not request.requires_confirmation:
            request = dataclasses.replace(request, requires_confirmation=True)
        return request, playbook, params, playbook.target(params)

    def _verdict(
        self, request: Request, view: GateView, target: str, risk: str, now: float
    ) -> Verdict:
        given = CheckInput(
            request=request,
            settings=self.settings,
            view=view,
            now=now,
            target=target,
            idempotency_key=idempotency_key(request, self.settings.safety.idempotency.key_fields),
            risk=risk,
        )
        for check in self.checks:
            verdict = check(given)
            if verdict.action != "allow":
                return verdict
        return Verdict.allow()

    def preview(self, request: Request) -> Preview:
        """The dry run: gate verdict (nothing recorded) and the plan (nothing executed)."""
        request, playbook, params, target = self._resolve(request)
        with self.store.reading() as connection:
            verdict = self._verdict(
                request, GateView(connection), target, playbook.risk, self.clock.now()
            )
        ctx = self._context(playbook, dry_run=True)
        return Preview(playbook.name, target, verdict, playbook.plan(ctx, params))

    def decide(self, request: Request) -> Decision:
        """Gate the request and record the decision; admitted ones get a queued execution.

        A request from an automatic trigger whose playbook or parameters do not
        validate is recorded as blocked with the reason; a manual one raises.
        """
        return self.decide_all([request])[0]

    def decide_all(self, items: Sequence[Request | Note]) -> list[Decision]:
        """Decide many in one serialized transaction: one commit (one fsync) for a whole
        Alertmanager notification. Later items see the admissions of earlier ones."""
        decisions, follow_up = self.decide_committed(items)
        follow_up()
        return decisions

    def decide_committed(
        self, items: Sequence[Request | Note], *, sync_audit: bool = True
    ) -> tuple[list[Decision], Callable[[], None]]:
        """`decide_all` up to the commit. The decisions are durable when this returns; the
        audit lines and escalation notices are written by the returned function, which
        the webhook's writer calls once it has answered the waiting requests (and, with
        `sync_audit=False`, fsyncs the audit log itself at most a second later)."""
        resolved: list[tuple[Request, str, str, Verdict | None] | Note] = []
        # An alert storm repeats the same requests: validate each distinct one once.
        seen: dict[tuple[Any, ...], tuple[str, str, bool] | UsageError] = {}
        for item in items:
            if isinstance(item, Note):
                resolved.append(item)
                continue
            key = _parameters_key(item)
            known = seen.get(key) if key is not None else None
            if known is None:
                try:
                    _request, playbook, _params, target = self._resolve(item)
                    known = (target, playbook.risk, playbook.requires_confirmation)
                except UsageError as error:
                    if not item.automatic:
                        raise
                    known = error
                if key is not None:
                    seen[key] = known
            if isinstance(known, UsageError):
                resolved.append((item, "-", "high", Verdict.block("parameters", known.message)))
                continue
            target, risk, confirm = known
            if confirm and not item.requires_confirmation:
                item = dataclasses.replace(item, requires_confirmation=True)
            resolved.append((item, target, risk, None))
        fields = self.settings.safety.idempotency.key_fields
        keys = (
            [
                found
                for item in resolved
                if not isinstance(item, Note) and (found := idempotency_key(item[0], fields))
            ]
            if self.store.reads_ahead
            else []
        )
        entries: list[dict[str, Any]] = []
        decisions: list[Decision] = []
        with self.store.gate_transaction() as view:
            # A request and a decision each; PostgreSQL reads the pause flag and the
            # idempotency keys' last admissions at once.
            view.expect(len(resolved), flags=("paused",), idempotency_keys=keys)
            now = self.clock.now()
            for entry_item in resolved:
                line: dict[str, Any] | None
                if isinstance(entry_item, Note):
                    decision, line = self._record_note(view, entry_item, now)
                else:
                    decision, line = self._gate_one(view, *entry_item, now=now)
                decisions.append(decision)
                if line is not None:
                    entries.append(line)

        def follow_up() -> None:
            if entries:
                self.write_audit(entries, sync=sync_audit)
            for decision, item in zip(decisions, items, strict=True):
                if decision.approval_id is not None and isinstance(item, Request):
                    self._notify_escalation(decision, item)
            # The metrics textfile is refreshed after executions, not after every gate
            # decision: under an alert storm that would rescan the store per notification.

        return decisions, follow_up

    def _gate_one(
        self,
        view: GateView,
        request: Request,
        target: str,
        risk: str,
        invalid: Verdict | None,
        *,
        now: float,
    ) -> tuple[Decision, dict[str, Any] | None]:
        key = idempotency_key(request, self.settings.safety.idempotency.key_fields)
        if invalid is not None:
            verdict = invalid
        elif self._pure_checks and (same := _verdict_key(request, target, risk)) is not None:
            # The built-in checks answer from the request and the view alone, and the
            # view's answers hold until an admission (which clears view.verdicts).
            if same not in view.verdicts:
                view.verdicts[same] = self._verdict(request, view, target, risk, now)
            verdict = view.verdicts[same]
        else:
            verdict = self._verdict(request, view, target, risk, now)
        request_row = _request_row(request, now)
        request_id = Store.insert_request(view, request_row)
        action = {"allow": "execute", "block": "block", "escalate": "escalate"}[verdict.action]
        reason = verdict.reason or ("forced by operator" if request.forced else "all checks passed")
        decision_id = Store.insert_decision(
            view,
            {
                "request_id": request_id,
                "created_at": now,
                "source": request.source,
                "playbook": request.playbook,
                "alertname": request.alert.name if request.alert else None,
                "target": target,
                "action": action,
                "check_name": verdict.check or None,
                "reason": reason,
                "confidence": request.confidence,
                "forced": request.forced,
            },
        )
        execution_id = approval_id = None
        if action == "execute":
            from remediate.pipeline.checks.rate_limit import rule_keys

            given = CheckInput(request, self.settings, view, now, target, key, risk)
            execution_id = Store.insert_execution(
                view,
                {
                    "decision_id": decision_id,
                    "attempt": 1,
                    "playbook": request.playbook,
                    "target": target,
                    "source": request.source,
                    # The alert it answers, as the request row holds it.
                    "alertname": request_row["alertname"],
                    "fingerprint": request_row["fingerprint"],
                    "alert_starts_at": request_row["alert_starts_at"],
                    "idempotency_key": key,
                    "forced": request.forced,
                    "admitted_at": now,
                    "status": "queued",
                },
                rule_keys(given),
            )
        elif action == "escalate":
            approval_id = Store.insert_approval(
                view,
                decision_id=decision_id,
                request_id=request_id,
                now=now,
                expires_at=now + self.settings.safety.approval_ttl_minutes * 60,
            )
        decision = Decision(
            id=decision_id,
            action=action,  # type: ignore[arg-type]
            playbook=request.playbook,
            reason=reason,
            check=verdict.check,
            execution_id=execution_id,
            request_id=request_id,
            approval_id=approval_id,
            target=target,
        )
        if execution_id is not None:
            return decision, None  # its audit line is written when it finishes
        return decision, entry(
            decision_id=decision_id,
            timestamp=now,
            source=request.source,
            playbook=request.playbook,
            alert=request.alert.name if request.alert else None,
            parameters=dict(request.parameters),
            action=action,
            reason=reason,
            check=verdict.check,
            confidence=request.confidence,
            forced=request.forced,
        )

    def note(self, note: Note) -> Decision:
        """Record a decision that needs no gate: no route, investigation only, resolved."""
        return self.decide_all([note])[0]

    def _record_note(
        self, view: GateView, note: Note, now: float
    ) -> tuple[Decision, dict[str, Any]]:
        alert = note.alert
        request = Request(
            note.playbook or "", source=note.source, alert=alert, confidence=note.confidence
        )
        row = _request_row(request, now)
        row["playbook"] = note.playbook
        request_id = Store.insert_request(view, row)
        decision_id = Store.insert_decision(
            view,
            {
                "request_id": request_id,
                "created_at": now,
                "source": note.source,
                "playbook": note.playbook,
                "alertname": alert.name if alert else None,
                "target": None,
                "action": note.action,
                "check_name": note.check,
                "reason": note.reason,
                "confidence": note.confidence,
                "forced": False,
            },
        )
        line = entry(
            decision_id=decision_id,
            timestamp=now,
            source=note.source,
            playbook=note.playbook,
            alert=alert.name if alert else None,
            parameters=None,
            action=note.action,
            reason=note.reason,
            check=note.check,
            confidence=note.confidence,
        )
        decision = Decision(
            decision_id,
            note.action,
            note.playbook or "",
            note.reason,
            note.check,
            request_id=request_id,
        )
        return decision, line

    def _notify_escalation(self, decision: Decision, request: Request) -> None:
        if self.notify is None or "escalated" not in self.settings.notifications.on:
            return
        from remediate.system.notify import escalation_message

        assert decision.approval_id is not None
        self.notify(
            *escalation_message(
                decision_id=decision.id,
                approval_id=decision.approval_id,
                playbook=decision.playbook,
                alert=request.alert.name if request.alert else None,
                reason=decision.reason,
            )
        )

    # --- runner -----------------------------------------------------------------------

    def _context(
        self, playbook: Playbook, *, dry_run: bool = False, timeout: float | None = None
    ) -> Context:
        return Context(
            settings=self.settings,
            runner=self.process_runner,
            clock=self.clock,
            deadline=time.monotonic() + (timeout or playbook.timeout),
            dry_run=dry_run,
            submit=None if dry_run else self.run,
        )

    def _attempt(self, playbook: Playbook, params: BaseModel, timeout: float) -> Result:
        ctx = self._context(playbook, timeout=timeout)
        try:
            plan = playbook.plan(ctx, params)
            result = playbook.execute(ctx, plan, params)
            return playbook.verify(ctx, params, result)
        except PlaybookTimeout as error:
            return Result("timeout", str(error), tuple(ctx.log))
        except RemediateError as error:
            return Result("failure", error.message, tuple(ctx.log))
        except Exception as error:  # a playbook bug is recorded as a failure, never a crash
            return Result("failure", f"{type(error).__name__}: {error}", tuple(ctx.log))

    def execute(self, execution_id: int) -> Report:
        """Run an admitted execution: lease, plan, execute, verify, retry, record."""
        owner = owner_id()
        self.recover()
        row = self.store.execution_with_request(execution_id)
        playbook = self.registry.get(row["playbook"])
        params = playbook.parse_parameters(row["parameters"] or {})
        lease_key = f"{row['playbook']}:{row['target']}"
        grace = self.settings.safety.lease_grace_seconds
        timeout = min(playbook.timeout, row["timeout_seconds"] or playbook.timeout)
        now = self.clock.now()
        holder = self.store.claim(
            execution_id,
            lease_key=lease_key,
            owner=owner,
            now=now,
            expires_at=now + timeout + grace,
        )
        if holder is not None:
            result = Result(
                "skipped",
                f"execution {holder} of {row['playbook']} on {row['target']} is already running",
            )
            self.store.finish(
                execution_id, status="skipped", finished_at=now, values={"summary": result.summary}
            )
            return self._record(row, execution_id, result, attempts=1)
        retries = playbook.retries
        attempt, current_id = 1, execution_id
        while True:
            result = self._attempt(playbook, params, timeout)
            retry = result.status in retries.on and attempt < retries.attempts
            self.store.finish(
                current_id,
                status=result.status,
                finished_at=self.clock.now(),
                values=_result_values(result),
                impacts=[
                    {"kind": impact.kind, "subject": impact.subject, "value": impact.value}
                    for impact in result.impacts
                ],
                release_lease=not retry,
            )
            if not retry:
                break
            delay = min(
                retries.backoff_seconds * retries.multiplier ** (attempt - 1),
                retries.max_backoff_seconds,
            )
            if retries.jitter:
                delay *= random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not cryptography
            self.sleep(delay)
            attempt += 1
            now = self.clock.now()
            current_id = self.store.add_attempt(
                current_id, now=now, owner=owner, expires_at=now + timeout + grace
            )
        return self._record(row, current_id, result, attempts=attempt)

    def _record(
        self, row: Mapping[str, Any], execution_id: int, result: Result, *, attempts: int
    ) -> Report:
        stored = self.store.execution(execution_id) or {}
        duration = float(stored.get("duration_seconds") or 0.0)
        self.write_audit(
            [
                entry(
                    decision_id=row["decision_id"],
                    timestamp=stored.get("finished_at") or self.clock.now(),
                    source=row["source"],
                    playbook=row["playbook"],
                    alert=row["alertname"],
                    parameters=row["parameters"],
                    action="execute",
                    reason=row["reason"],
                    status=result.status,
                    execution_id=execution_id,
                    confidence=row["confidence"],
                    stdout=result.stdout,
                    stderr=result.stderr,
                    duration_s=duration,
                    forced=row["forced"],
                )
            ]
        )
        self._after_record()
        if self.notify is not None and (
            (
                result.status in ("failure", "timeout")
                and "failure" in self.settings.notifications.on
            )
            or (result.status == "success" and "success" in self.settings.notifications.on)
        ):
            self.notify(
                f"remediate: {row['playbook']} {result.status}",
                f"{row['playbook']} on {row['target']}: {result.summary} "
                f"(decision {row['decision_id']}, execution {execution_id})",
            )
        return Report(
            execution_id=execution_id,
            decision_id=row["decision_id"],
            playbook=row["playbook"],
            status=result.status,
            summary=result.summary,
            duration=duration,
            attempts=attempts,
            result=result,
        )

    def recover(self) -> list[int]:
        """Find executions a crash left `running`, mark them interrupted, and apply
        `safety.on_interrupted`: escalate (a pending approval), resume (a new queued
        attempt of the same decision) or record only. Returns the interrupted ids."""
        now = self.clock.now()
        interrupted = self.store.sweep_interrupted(now=now)
        policy = self.settings.safety.on_interrupted
        for execution_id in interrupted:
            if policy == "resume":
                self.store.requeue(execution_id, now=now)
            elif policy == "escalate":
                approval_id = self.store.escalate_interrupted(
                    execution_id,
                    now=now,
                    expires_at=now + self.settings.safety.approval_ttl_minutes * 60,
                )
                if approval_id is not None and self.notify is not None:
                    self.notify(
                        f"remediate: execution {execution_id} was interrupted",
                        f"Execution {execution_id} stopped before it recorded an outcome "
                        f"(crash or reboot). Approve to run it again: remediate approve "
                        f"{approval_id}",
                    )
        return interrupted

    def write_audit(self, entries: list[dict[str, Any]], *, sync: bool = True) -> None:
        """Mirror decisions to the JSONL log. The store already holds them: a full or
        broken disk here is logged, never turned into a lost or repeated decision."""
        try:
            self.audit.append_many(entries, sync=sync)
        except OSError as error:
            log.error(
                "could not write %d audit line(s) to %s: %s", len(entries), self.audit.path, error
            )

    def _after_record(self) -> None:
        if self.after_record is not None:
            self.after_record()

    def run(self, request: Request) -> tuple[Decision, Report | None]:
        """Decide, and when admitted execute now: the CLI's path."""
        decision = self.decide(request)
        if decision.execution_id is None:
            return decision, None
        return decision, self.execute(decision.execution_id)


def _parameters_key(request: Request) -> tuple[Any, ...] | None:
    """What `_resolve` depends on, hashable; None when a value is not (then no reuse)."""
    key = (request.playbook, request.automatic, *request.parameters.items())
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _verdict_key(request: Request, target: str, risk: str) -> tuple[Any, ...] | None:
    """Everything of a request the built-in checks read, hashable; None when it is not."""
    alert = request.alert
    key = (
        request.playbook,
        target,
        risk,
        request.source,
        request.forced,
        request.confidence,
        request.requires_confirmation,
        request.confirmed,
        request.approved,
        tuple(request.parameters.items()),
        None if alert is None else (alert.name, alert.status, *sorted(alert.labels.items())),
    )
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _request_row(request: Request, now: float) -> dict[str, Any]:
    alert = request.alert
    return {
        "created_at": now,
        "source": request.source,
        "playbook": request.playbook,
        "parameters": dict(request.parameters),
        "alertname": alert.name if alert else None,
        "fingerprint": alert.fingerprint if alert else None,
        "labels": dict(alert.labels) if alert else None,
        "annotations": dict(alert.annotations) if alert else None,
        "alert_starts_at": alert.starts_at if alert else None,
        "alert_ends_at": alert.ends_at if alert else None,
        "confidence": request.confidence,
        "forced": request.forced,
        "dry_run": request.dry_run,
        "chain_run_id": request.chain_run_id,
        "timeout_seconds": request.timeout,
    }


def _result_values(result: Result) -> dict[str, Any]:
    return {
        "summary": result.summary,
        "root_cause": result.root_cause,
        "stdout": excerpt(result.stdout),
        "stderr": excerpt(result.stderr),
        "actions": list(result.actions),
        "details": dict(result.details) or None,
    }
