"""A realistic synthetic month of history, for report tests and the bench (bench/report_speed.py).

    >>> fill(store, "2025-12", executions=300, seed=7)

Writes requests, decisions, executions (with retries), impacts, escalations with
approvals, blocks, resolved notifications and scored forecasts through
SQLAlchemy Core bulk inserts, in chunks, with explicit ids (so rows can point
at each other without a round trip). Deterministic for a given seed. Shapes
follow the seed's month: disk cleanups rising, self-healing restarts falling,
memory pressure the most common root cause, forecasts getting more accurate.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from remediate.analytics.window import Window
from remediate.store import Store
from remediate.store import tables as t

CHUNK = 20_000


@dataclass(frozen=True)
class Profile:
    """How one playbook behaves: share of runs, sources, duration, success, trend."""

    share: float
    sources: dict[str, float]
    median_seconds: float
    success: float
    trend: str = "flat"  # rising | falling | flat
    alert: str | None = None


PROFILES: dict[str, Profile] = {
    "disk-cleanup": Profile(
        0.35,
        {"schedule": 0.4, "webhook": 0.4, "autonomous": 0.2},
        40,
        0.96,
        "rising",
        "DiskSpaceLow",
    ),
    "self-healing-restart": Profile(
        0.2, {"webhook": 0.85, "manual": 0.15}, 25, 0.88, "falling", "ContainerDown"
    ),
    "service-restart": Profile(0.1, {"webhook": 0.6, "manual": 0.4}, 8, 0.95, alert="ServiceDown"),
    "database-maintenance": Profile(
        0.08, {"schedule": 0.7, "webhook": 0.3}, 90, 0.93, alert="PostgresBloat"
    ),
    "predictive-maintenance": Profile(0.15, {"schedule": 1.0}, 5, 0.99),
    "resource-pressure": Profile(0.07, {"webhook": 1.0}, 12, 0.8, alert="MemoryPressure"),
    "drift-reconciliation": Profile(0.05, {"schedule": 1.0}, 15, 0.97),
}
SERVICES = {"jellyfin": 5, "immich-server": 3, "nextcloud": 2, "paperless": 1, "home-assistant": 1}
ROOT_CAUSES = {
    "memory_pressure": 0.45,
    "exit_code": 0.2,
    "health_check": 0.15,
    "dependency_down": 0.1,
    "crash_loop": 0.1,
}
DATABASES = ("immich", "nextcloud", "paperless")
RESOURCES = {"disk:/": 0.85, "disk:/var/lib/containers": 0.8, "memory": 0.5}
BLOCKS = {
    "rate_limit": (0.5, "cooldown: {playbook} ran 6 min ago (cooldown 15 min, 9 min left)"),
    "idempotency": (0.25, "duplicate of an alert executed 2 min ago (window 5 min)"),
    "circuit_breaker": (
        0.1,
        "circuit open: {playbook} failed 3 times in a row; trial allowed in 20 min",
    ),
    "service_override": (0.1, "service traefik is in the override list"),
    "pause": (0.05, "remediation is paused (remediate resume)"),
}


@dataclass
class Filled:
    """What `fill` wrote: row counts per table and the window it covers."""

    window: Window
    rows: dict[str, int] = field(default_factory=dict)


@dataclass
class _Ids:
    request: int
    decision: int
    execution: int
    impact: int
    approval: int
    forecast: int


@dataclass
class _Batch:
    requests: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    executions: list[dict[str, Any]] = field(default_factory=list)
    impacts: list[dict[str, Any]] = field(default_factory=list)
    approvals: list[dict[str, Any]] = field(default_factory=list)
    forecasts: list[dict[str, Any]] = field(default_factory=list)

    def tables(self) -> Iterator[tuple[sa.Table, list[dict[str, Any]]]]:
        # Parents before children, for the foreign keys.
        yield t.requests, self.requests
        yield t.decisions, self.decisions
        yield t.executions, self.executions
        yield t.impacts, self.impacts
        yield t.approvals, self.approvals
        yield t.forecasts, self.forecasts


def fill(store: Store, month: str, *, executions: int = 300, seed: int = 0) -> Filled:
    """Write a synthetic month with `executions` execution rows (retries included)."""
    window = Window.month(month)
    rng = random.Random(seed)  # noqa: S311 - reproducible data, not cryptography
    generator = _Generator(rng, window, _next_ids(store))
    filled = Filled(window)
    remaining = executions
    while remaining > 0:
        batch = generator.batch(min(CHUNK, remaining))
        remaining -= len(batch.executions)
        _insert(store, batch, filled)
    _insert(store, generator.forecasts(max(60, executions // 40)), filled)
    _advance_sequences(store)
    return filled


def _next_ids(store: Store) -> _Ids:
    tables = (t.requests, t.decisions, t.executions, t.impacts, t.approvals, t.forecasts)
    with store.reading() as connection:
        highest = [connection.execute(sa.select(sa.func.max(x.c.id))).scalar() or 0 for x in tables]
    return _Ids(*(value + 1 for value in highest))


def _insert(store: Store, batch: _Batch, filled: Filled) -> None:
    # gate_transaction is the store's serialized write transaction: one commit per chunk.
    with store.gate_transaction() as view:
        for table, rows in batch.tables():
            if rows:
                view.connection.execute(table.insert(), rows)
                filled.rows[table.name] = filled.rows.get(table.name, 0) + len(rows)


def _advance_sequences(store: Store) -> None:
    """PostgreSQL: explicit ids do not move the id sequences; move them past the new rows."""
    if store.is_sqlite:
        return
    with store.gate_transaction() as view:
        for table in (t.requests, t.decisions, t.executions, t.impacts, t.approvals, t.forecasts):
            view.connection.execute(
                sa.text(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "  # noqa: S608
                    f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {table.name}), false)"
                )
            )


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


class _Generator:
    def __init__(self, rng: random.Random, window: Window, ids: _Ids) -> None:
        self.rng = rng
        self.window = window
        self.ids = ids
        self.playbooks = {name: profile.share for name, profile in PROFILES.items()}
        self.critical_times: list[float] = []

    # --- times ----------------------------------------------------------------------

    def _when(self, trend: str) -> float:
        """A time in the month; rising trends crowd the end, falling ones the start."""
        u = self.rng.random()
        if trend == "rising":
            u = math.sqrt(u)
        elif trend == "falling":
            u = 1 - math.sqrt(u)
        # Stay a day clear of the end so retries and resolutions land inside the month.
        return self.window.start + u * (self.window.seconds - 86400)

    # --- rows -------------------------------------------------------------------------

    def _request(
        self, batch: _Batch, at: float, source: str, playbook: str | None, **alert: Any
    ) -> int:
        request_id = self.ids.request
        self.ids.request += 1
        batch.requests.append(
            {
                "id": request_id,
                "created_at": at,
                "source": source,
                "playbook": playbook,
                "chain": None,
                "parameters": alert.pop("parameters", {}),
                "alertname": alert.get("alertname"),
                "fingerprint": alert.get("fingerprint"),
                "labels": alert.get("labels"),
                "annotations": None,
                "alert_starts_at": alert.get("starts_at"),
                "alert_ends_at": alert.get("ends_at"),
                "confidence": alert.get("confidence", 100.0),
                "forced": False,
                "dry_run": False,
                "chain_run_id": None,
                "timeout_seconds": None,
            }
        )
        return request_id

    def _decision(
        self,
        batch: _Batch,
        request_id: int,
        at: float,
        source: str,
        playbook: str | None,
        action: str,
        *,
        alertname: str | None = None,
        target: str | None = None,
        check: str | None = None,
        reason: str = "all checks passed",
        confidence: float = 100.0,
    ) -> int:
        decision_id = self.ids.decision
        self.ids.decision += 1
        batch.decisions.append(
            {
                "id": decision_id,
                "request_id": request_id,
                "created_at": at,
                "source": source,
                "playbook": playbook,
                "alertname": alertname,
                "target": target,
                "action": action,
                "check_name": check,
                "reason": reason,
                "confidence": confidence,
                "forced": False,
            }
        )
        return decision_id

    def batch(self, executions: int) -> _Batch:
        batch = _Batch()
        while len(batch.executions) < executions:
            roll = self.rng.random()
            if roll < 0.08:
                self._block(batch)
            elif roll < 0.11:
                self._escalation(batch)
            else:
                self._run(batch, executions - len(batch.executions))
        return batch

    def _target(self, playbook: str) -> tuple[str, dict[str, str]]:
        if playbook in ("self-healing-restart", "service-restart", "resource-pressure"):
            service = _pick(self.rng, {k: float(v) for k, v in SERVICES.items()})
            return service, {"service": service}
        if playbook == "database-maintenance":
            database = self.rng.choice(DATABASES)
            return database, {"database": database}
        if playbook == "disk-cleanup":
            return "/", {"mount": "/"}
        return "-", {}

    def _run(self, batch: _Batch, room: int) -> None:
        rng = self.rng
        playbook = _pick(rng, self.playbooks)
        profile = PROFILES[playbook]
        source = _pick(rng, profile.sources)
        at = self._when(profile.trend)
        target, parameters = self._target(playbook)
        alert: dict[str, Any] = {"parameters": parameters}
        alertname = None
        if source == "webhook" and profile.alert:
            alertname = profile.alert
            starts = at - rng.uniform(30, 600)
            fingerprint = f"{rng.getrandbits(64):016x}"
            alert.update(
                alertname=alertname,
                fingerprint=fingerprint,
                labels={"alertname": alertname, **parameters},
                starts_at=starts,
                confidence=95.0,
            )
        if source == "autonomous":
            self.critical_times.append(at - rng.uniform(300, 3000))
        confirmed = playbook == "database-maintenance" and source == "webhook"
        asked = at - rng.uniform(60, 900) if confirmed else at
        request_id = self._request(batch, asked, source, playbook, **alert)
        if confirmed:
            # It requires confirmation: an escalation, approved, then the run.
            self._approved_escalation(batch, request_id, asked, playbook)
        decision_id = self._decision(
            batch, request_id, at, source, playbook, "execute", alertname=alertname, target=target
        )
        attempt, admitted = 1, at
        while True:
            status, finished = self._execution(
                batch, decision_id, attempt, playbook, target, source, alert, admitted
            )
            retry = status != "success" and attempt < 3 and rng.random() < 0.3 and room > attempt
            if not retry:
                break
            attempt += 1
            admitted = finished + rng.uniform(5, 60)
        if alertname is not None and status == "success" and rng.random() < 0.7:
            ends = finished + rng.uniform(30, 300)
            resolved = {**alert, "ends_at": ends, "confidence": 0.0, "parameters": {}}
            note_id = self._request(batch, ends, "webhook", playbook, **resolved)
            self._decision(
                batch,
                note_id,
                ends,
                "webhook",
                playbook,
                "record",
                alertname=alertname,
                check="status",
                reason="resolved notification: recorded, never executed",
                confidence=0.0,
            )

    def _execution(
        self,
        batch: _Batch,
        decision_id: int,
        attempt: int,
        playbook: str,
        target: str,
        source: str,
        alert: dict[str, Any],
        admitted: float,
    ) -> tuple[str, float]:
        alertname = alert.get("alertname")
        rng, profile = self.rng, PROFILES[playbook]
        execution_id = self.ids.execution
        self.ids.execution += 1
        started = admitted + rng.uniform(0.01, 2)
        duration = rng.lognormvariate(math.log(profile.median_seconds), 0.6)
        roll = rng.random()
        status = "success" if roll < profile.success else "timeout" if roll > 0.995 else "failure"
        finished = started + duration
        root_cause = _pick(rng, ROOT_CAUSES) if playbook == "self-healing-restart" else None
        batch.executions.append(
            {
                "id": execution_id,
                "decision_id": decision_id,
                "attempt": attempt,
                "playbook": playbook,
                "target": target,
                "source": source,
                "alertname": alertname,
                "idempotency_key": f"alertname={alertname}|service={target}" if alertname else None,
                "forced": False,
                "admitted_at": admitted,
                "started_at": started,
                "finished_at": finished,
                "status": status,
                "duration_seconds": duration,
                "root_cause": root_cause,
                "summary": f"{playbook} {status} on {target}",
                "stdout": "",
                "stderr": "" if status == "success" else "exit status 1",
                "actions": [],
                "details": {},
                "lease_owner": None,
                "lease_expires_at": None,
                "fingerprint": alert.get("fingerprint"),
                "alert_starts_at": alert.get("starts_at"),
            }
        )
        for kind, subject, value in self._impacts(playbook, target, status, root_cause):
            batch.impacts.append(
                {
                    "id": self.ids.impact,
                    "execution_id": execution_id,
                    "playbook": playbook,
                    "kind": kind,
                    "subject": subject,
                    "value": value,
                    "at": finished,
                }
            )
            self.ids.impact += 1
        return status, finished

    def _impacts(
        self, playbook: str, target: str, status: str, root_cause: str | None
    ) -> list[tuple[str, str, float]]:
        rng = self.rng
        found: list[tuple[str, str, float]] = []
        if root_cause == "memory_pressure":
            found.append(("oom_detected", target, 1.0))
        if status != "success":
            return found
        if playbook == "disk-cleanup":
            # One cleanup in ten finds nothing to reclaim: a zero figure, still reported.
            value = 0.0 if rng.random() < 0.1 else float(int(rng.lognormvariate(21, 1.2)))
            found.append(("bytes_reclaimed", "/", value))
        elif playbook in ("self-healing-restart", "service-restart"):
            found.append(("service_restarted", target, 1.0))
        elif playbook == "database-maintenance":
            found.append(("rows_removed", target, float(rng.randint(0, 500_000))))
            found.append(("bytes_reclaimed", f"postgres:{target}", float(rng.randint(0, 2**28))))
        return found

    def _approved_escalation(
        self, batch: _Batch, request_id: int, at: float, playbook: str
    ) -> None:
        decision_id = self._decision(
            batch,
            request_id,
            at,
            "webhook",
            playbook,
            "escalate",
            check="confidence",
            reason=f"{playbook} requires confirmation (confidence 95%, threshold 90%)",
            confidence=95.0,
        )
        self._approval(batch, decision_id, request_id, at, "approved")

    def _approval(
        self, batch: _Batch, decision_id: int, request_id: int, at: float, status: str
    ) -> None:
        decided = at + self.rng.uniform(60, 1800) if status != "expired" else at + 3600
        batch.approvals.append(
            {
                "id": self.ids.approval,
                "decision_id": decision_id,
                "request_id": request_id,
                "created_at": at,
                "expires_at": at + 3600,
                "status": status,
                "decided_at": decided,
                "decided_by": None if status == "expired" else "operator",
                "note": None,
                "outcome_decision_id": None,
            }
        )
        self.ids.approval += 1

    def _escalation(self, batch: _Batch) -> None:
        """A low-confidence self-healing request: approvals go either way."""
        rng = self.rng
        at = self._when("flat")
        service, parameters = self._target("self-healing-restart")
        request_id = self._request(
            batch,
            at,
            "webhook",
            "self-healing-restart",
            parameters=parameters,
            alertname="ContainerUnhealthy",
            confidence=75.0,
        )
        decision_id = self._decision(
            batch,
            request_id,
            at,
            "webhook",
            "self-healing-restart",
            "escalate",
            alertname="ContainerUnhealthy",
            target=service,
            check="confidence",
            reason="confidence 75% is below the threshold 90%",
            confidence=75.0,
        )
        status = _pick(rng, {"approved": 0.6, "rejected": 0.25, "expired": 0.15})
        self._approval(batch, decision_id, request_id, at, status)

    def _block(self, batch: _Batch) -> None:
        rng = self.rng
        check = _pick(rng, {name: weight for name, (weight, _) in BLOCKS.items()})
        playbook = "resource-pressure" if check == "circuit_breaker" else _pick(rng, self.playbooks)
        at = self._when("flat")
        target, parameters = self._target(playbook)
        alertname = PROFILES[playbook].alert
        request_id = self._request(
            batch,
            at,
            "webhook",
            playbook,
            parameters=parameters,
            alertname=alertname,
            confidence=95.0,
        )
        self._decision(
            batch,
            request_id,
            at,
            "webhook",
            playbook,
            "block",
            alertname=alertname,
            target=target,
            check=check,
            reason=BLOCKS[check][1].format(playbook=playbook),
            confidence=95.0,
        )

    def forecasts(self, count: int) -> _Batch:
        """Forecasts through the month, scored a day later; critical ones before each
        autonomous run, and some critical ones nobody acted on."""
        rng, batch = self.rng, _Batch()
        times = [(when, "critical", "disk:/") for when in self.critical_times]
        while len(times) < count + len(self.critical_times):
            resource = rng.choice(list(RESOURCES))
            severity = _pick(rng, {"ok": 0.7, "warning": 0.22, "critical": 0.08})
            times.append((self._when("flat"), severity, resource))
        for created, severity, resource in times:
            progress = (created - self.window.start) / self.window.seconds
            # Accuracy improves through the month (the model learns from scored forecasts).
            mean = RESOURCES[resource] - 0.1 + 0.2 * progress
            score = min(1.0, max(0.0, rng.gauss(mean, 0.08)))
            scored_at = created + 86400
            scored = scored_at < self.window.end
            current = rng.uniform(0.5, 0.97)
            batch.forecasts.append(
                {
                    "id": self.ids.forecast,
                    "created_at": created,
                    "resource": resource,
                    "current": current,
                    "trend_per_day": rng.uniform(-0.01, 0.03),
                    "horizon_at": created + 86400,
                    "predicted": min(1.0, current + 0.02),
                    "seconds_to_full": rng.uniform(3600, 30 * 86400),
                    "severity": severity,
                    "confidence": rng.uniform(60, 99),
                    "scored_at": scored_at if scored else None,
                    "actual": min(1.0, current + 0.015) if scored else None,
                    "score": score if scored else None,
                }
            )
            self.ids.forecast += 1
        self.critical_times = []
        return batch
