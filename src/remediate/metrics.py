"""Prometheus metrics, derived from the store at collection time, so counters survive restarts.

The seed's nine families keep their names (a contract); gate, breaker, pause,
queue and approval families join them. Served at /metrics and written as a
node-exporter textfile (temp file + rename) after every execution.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from remediate.clock import Clock
from remediate.config.models import Settings
from remediate.store import GateView, Store
from remediate.store import tables as t

STATUSES = ("success", "failure", "timeout", "skipped", "interrupted")


class StoreCollector(Collector):
    def __init__(self, store: Store, settings: Settings, clock: Clock) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        with self.store.reading() as connection:
            yield from self._executions(connection)
            yield from self._duration(connection)
            yield from self._impacts(connection)
            yield from self._self_healing(connection)
            yield from self._accuracy(connection)
            yield from self._gate(connection)
            from remediate.chains.metrics import collect as chain_metrics

            yield from chain_metrics(connection, self.settings)

    def _executions(self, connection: sa.Connection) -> Iterator[Metric]:
        e = t.executions
        executions = CounterMetricFamily(
            "remediation_playbook_executions",
            "Playbook executions (every attempt) by final status.",
            labels=["playbook", "status"],
        )
        rows = connection.execute(
            sa.select(e.c.playbook, e.c.status, sa.func.count())
            .where(e.c.status.in_(STATUSES))
            .group_by(e.c.playbook, e.c.status)
            .order_by(e.c.playbook, e.c.status)
        )
        for playbook, status, count in rows:
            executions.add_metric([playbook, status], count)
        yield executions

        last_success = GaugeMetricFamily(
            "remediation_playbook_last_success_timestamp",
            "When each playbook last succeeded (seconds since the epoch).",
            labels=["playbook"],
        )
        rows = connection.execute(
            sa.select(e.c.playbook, sa.func.max(e.c.finished_at))
            .where(e.c.status == "success")
            .group_by(e.c.playbook)
            .order_by(e.c.playbook)
        )
        for playbook, finished in rows:
            last_success.add_metric([playbook], finished)
        yield last_success

        in_flight = GaugeMetricFamily(
            "remediation_executions_in_progress",
            "Executions queued or running now.",
            labels=["status"],
        )
        counts: dict[str, int] = {
            status: count
            for status, count in connection.execute(
                sa.select(e.c.status, sa.func.count())
                .where(e.c.status.in_(("queued", "running")))
                .group_by(e.c.status)
            )
        }
        for status in ("queued", "running"):
            in_flight.add_metric([status], counts.get(status, 0))
        yield in_flight

    def _duration(self, connection: sa.Connection) -> Iterator[Metric]:
        e = t.executions
        buckets = self.settings.metrics.duration_buckets
        columns = [
            sa.func.sum(sa.case((e.c.duration_seconds <= bound, 1), else_=0)) for bound in buckets
        ]
        rows = connection.execute(
            sa.select(e.c.playbook, sa.func.count(), sa.func.sum(e.c.duration_seconds), *columns)
            .where(e.c.duration_seconds.is_not(None), e.c.status.in_(STATUSES))
            .group_by(e.c.playbook)
            .order_by(e.c.playbook)
        )
        duration = HistogramMetricFamily(
            "remediation_playbook_duration_seconds",
            "How long playbook executions took.",
            labels=["playbook"],
        )
        for playbook, count, total, *cumulative in rows:
            points = [(_bound(b), int(c or 0)) for b, c in zip(buckets, cumulative, strict=True)]
            points.append(("+Inf", int(count)))
            duration.add_metric([playbook], points, float(total or 0.0))
        yield duration

    def _impacts(self, connection: sa.Connection) -> Iterator[Metric]:
        i = t.impacts
        reclaimed = GaugeMetricFamily(
            "remediation_disk_space_reclaimed_bytes",
            "Bytes reclaimed by the latest execution of each playbook that reclaimed any.",
            labels=["playbook"],
        )
        for playbook, value in _latest_per_subject(connection, "bytes_reclaimed", i.c.playbook):
            reclaimed.add_metric([playbook], value)
        yield reclaimed

        restarted = CounterMetricFamily(
            "remediation_services_restarted",
            "Services restarted by playbooks.",
            labels=["playbook", "service"],
        )
        rows = connection.execute(
            sa.select(i.c.playbook, i.c.subject, sa.func.sum(i.c.value))
            .where(i.c.kind == "service_restarted")
            .group_by(i.c.playbook, i.c.subject)
            .order_by(i.c.playbook, i.c.subject)
        )
        for playbook, service, value in rows:
            restarted.add_metric([playbook, service], value)
        yield restarted

        oom = CounterMetricFamily(
            "remediation_oom_events_detected",
            "OOM kills detected while diagnosing services.",
            labels=["service"],
        )
        oom_rows = connection.execute(
            sa.select(i.c.subject, sa.func.sum(i.c.value))
            .where(i.c.kind == "oom_detected")
            .group_by(i.c.subject)
            .order_by(i.c.subject)
        )
        for service, value in oom_rows:
            oom.add_metric([service], value)
        yield oom

        vacuum = GaugeMetricFamily(
            "remediation_database_vacuum_rows_removed",
            "Dead rows removed by the latest vacuum of each database.",
            labels=["database"],
        )
        for database, value in _latest_per_subject(connection, "rows_removed", i.c.subject):
            vacuum.add_metric([database], value)
        yield vacuum

    def _self_healing(self, connection: sa.Connection) -> Iterator[Metric]:
        e = t.executions
        rate = GaugeMetricFamily(
            "remediation_self_healing_success_rate",
            "Share of self-healing executions that succeeded, by diagnosed root cause (0-1).",
            labels=["root_cause"],
        )
        rows = connection.execute(
            sa.select(
                e.c.root_cause,
                sa.func.count(),
                sa.func.sum(sa.case((e.c.status == "success", 1), else_=0)),
            )
            .where(e.c.root_cause.is_not(None), e.c.status.in_(("success", "failure", "timeout")))
            .group_by(e.c.root_cause)
            .order_by(e.c.root_cause)
        )
        for root_cause, total, successes in rows:
            rate.add_metric([root_cause], (successes or 0) / total)
        yield rate

    def _accuracy(self, connection: sa.Connection) -> Iterator[Metric]:
        from remediate.autonomous.accuracy import rolling_by_resource

        accuracy = GaugeMetricFamily(
            "remediation_predictive_accuracy",
            "Mean score (0-1) of the forecasts scored in the rolling window, by resource.",
            labels=["resource"],
        )
        scores = rolling_by_resource(
            connection,
            now=self.clock.now(),
            window_days=self.settings.autonomous.accuracy.window_days,
        )
        for resource, score in sorted(scores.items()):
            accuracy.add_metric([resource], score)
        yield accuracy

    def _gate(self, connection: sa.Connection) -> Iterator[Metric]:
        d = t.decisions
        decisions = CounterMetricFamily(
            "remediation_gate_decisions",
            "Gate decisions by source, action and the check that decided.",
            labels=["source", "action", "check"],
        )
        rows = connection.execute(
            sa.select(d.c.source, d.c.action, d.c.check_name, sa.func.count())
            .group_by(d.c.source, d.c.action, d.c.check_name)
            .order_by(d.c.source, d.c.action, d.c.check_name)
        )
        for source, action, check, count in rows:
            decisions.add_metric([source, action, check or ""], count)
        yield decisions

        from remediate.pipeline.checks.circuit_breaker import state

        view = GateView(connection)
        now = self.clock.now()
        breaker = GaugeMetricFamily(
            "remediation_circuit_breaker_open",
            "1 while a playbook's circuit breaker is open, 0.5 half-open, 0 closed.",
            labels=["playbook"],
        )
        failures = GaugeMetricFamily(
            "remediation_circuit_breaker_consecutive_failures",
            "Consecutive failed executions of each playbook.",
            labels=["playbook"],
        )
        playbooks = connection.execute(
            sa.select(t.executions.c.playbook).distinct().order_by(t.executions.c.playbook)
        ).scalars()
        for playbook in playbooks:
            current = state(view, playbook, self.settings.safety.circuit_breaker, now)
            value = {"closed": 0.0, "half_open": 0.5, "open": 1.0}[current.state]
            breaker.add_metric([playbook], value)
            failures.add_metric([playbook], current.consecutive_failures)
        yield breaker
        yield failures

        paused = GaugeMetricFamily("remediation_paused", "1 while automatic remediation is paused.")
        paused.add_metric([], 1.0 if view.flag("paused") else 0.0)
        yield paused

        a = t.approvals
        pending = GaugeMetricFamily(
            "remediation_approvals_pending", "Escalations waiting for an operator."
        )
        count = connection.execute(
            sa.select(sa.func.count())
            .select_from(a)
            .where(a.c.status == "pending", a.c.expires_at > now)
        ).scalar()
        pending.add_metric([], count or 0)
        yield pending


def _bound(value: float) -> str:
    return str(float(value))


def _latest_per_subject(
    connection: sa.Connection, kind: str, group: sa.Column[str]
) -> list[tuple[str, float]]:
    """For each group value, the sum of `kind` over its newest execution that reported it."""
    i = t.impacts
    newest = (
        sa.select(group.label("subject"), sa.func.max(i.c.execution_id).label("execution_id"))
        .where(i.c.kind == kind)
        .group_by(group)
        .subquery()
    )
    rows = connection.execute(
        sa.select(newest.c.subject, sa.func.sum(i.c.value))
        .select_from(
            i.join(
                newest,
                sa.and_(i.c.execution_id == newest.c.execution_id, group == newest.c.subject),
            )
        )
        .where(i.c.kind == kind)
        .group_by(newest.c.subject)
        .order_by(newest.c.subject)
    )
    return [(subject, float(value)) for subject, value in rows]


def registry_for(store: Store, settings: Settings, clock: Clock) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store, settings, clock))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    from prometheus_client import generate_latest

    return generate_latest(registry)


def write_textfile(registry: CollectorRegistry, path: Path) -> None:
    """Write atomically (temp file + rename) so node-exporter never reads half a file."""
    from prometheus_client import write_to_textfile

    path.parent.mkdir(parents=True, exist_ok=True)
    write_to_textfile(str(path), registry)
