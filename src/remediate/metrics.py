"""Prometheus metrics, derived from the store at collection time, so counters survive restarts.

The seed's nine families keep their names (a contract); gate, breaker, pause,
queue and approval families join them. Served at /metrics and written as a
node-exporter textfile (temp file + rename) after every execution.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    """The families, computed from the store at each collection.

    Over a long history a full recount would read every execution, decision and impact
    at each scrape (seconds over a million rows). Rows stop changing once written
    (decisions, impacts) or once their execution has finished, and every writer is
    serialized, so ids become visible in order: what a collection counted up to an id
    is kept (`_Settled`), and the next one reads only the rows after it.
    """

    def __init__(self, store: Store, settings: Settings, clock: Clock) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self._lock = threading.Lock()
        self._settled: dict[str, _Settled] = {}
        self._aggregates = {
            "executions": _aggregates_of_executions(settings),
            "decisions": _AGGREGATES_OF_DECISIONS,
            "impacts": _AGGREGATES_OF_IMPACTS,
        }

    def collect(self) -> Iterator[Metric]:
        with self._lock, self.store.reading() as connection:
            groups = self._groups(connection)
            yield from self._executions(connection, groups)
            yield from self._duration(groups)
            yield from self._impacts(groups)
            yield from self._self_healing(groups)
            yield from self._accuracy(connection)
            yield from self._gate(connection, groups)
            from remediate.chains.metrics import collect as chain_metrics

            yield from chain_metrics(connection, self.settings)

    def _groups(self, connection: sa.Connection) -> dict[str, dict[tuple[Any, ...], list[Any]]]:
        """Every aggregate: what is kept, advanced to the settled rows, plus the rest."""
        e, d, i = t.executions, t.decisions, t.impacts
        unfinished = connection.execute(
            sa.select(sa.func.min(e.c.id)).where(e.c.status.in_(("queued", "running")))
        ).scalar()
        tables = {
            "executions": (e, e.c.admitted_at),
            "decisions": (d, d.c.created_at),
            "impacts": (i, i.c.at),
        }
        merged: dict[str, dict[tuple[Any, ...], list[Any]]] = {}
        for name, (table, stamp_column) in tables.items():
            aggregates = self._aggregates[name]
            newest = connection.execute(sa.select(sa.func.max(table.c.id))).scalar() or 0
            upto = newest if name != "executions" or unfinished is None else unfinished - 1
            settled = self._settled.get(name)
            if settled is None or not settled.holds(connection, table, stamp_column):
                settled = self._settled[name] = _Settled(aggregates)
            if upto > settled.upto:
                settled.add(connection, table, lo=settled.upto, hi=upto)
                settled.upto = upto
                settled.stamp = connection.execute(
                    sa.select(stamp_column).where(table.c.id == upto)
                ).scalar()
            rest = _Settled(aggregates)
            if newest > settled.upto:
                rest.add(connection, table, lo=settled.upto, hi=newest)
            for aggregate in aggregates:
                merged[aggregate.name] = aggregate.merged(
                    settled.groups[aggregate.name], rest.groups[aggregate.name]
                )
        return merged

    def _executions(
        self, connection: sa.Connection, groups: dict[str, dict[tuple[Any, ...], list[Any]]]
    ) -> Iterator[Metric]:
        e = t.executions
        executions = CounterMetricFamily(
            "remediation_playbook_executions",
            "Playbook executions (every attempt) by final status.",
            labels=["playbook", "status"],
        )
        for (playbook, status), (count,) in _sorted(groups["by_status"]):
            executions.add_metric([playbook, status], count)
        yield executions

        last_success = GaugeMetricFamily(
            "remediation_playbook_last_success_timestamp",
            "When each playbook last succeeded (seconds since the epoch).",
            labels=["playbook"],
        )
        for (playbook,), (finished,) in _sorted(groups["last_success"]):
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

    def _duration(self, groups: dict[str, dict[tuple[Any, ...], list[Any]]]) -> Iterator[Metric]:
        buckets = self.settings.metrics.duration_buckets
        duration = HistogramMetricFamily(
            "remediation_playbook_duration_seconds",
            "How long playbook executions took.",
            labels=["playbook"],
        )
        for (playbook,), (count, total, *cumulative) in _sorted(groups["duration"]):
            points = [(_bound(b), int(c or 0)) for b, c in zip(buckets, cumulative, strict=True)]
            points.append(("+Inf", int(count)))
            duration.add_metric([playbook], points, float(total or 0.0))
        yield duration

    def _impacts(self, groups: dict[str, dict[tuple[Any, ...], list[Any]]]) -> Iterator[Metric]:
        reclaimed = GaugeMetricFamily(
            "remediation_disk_space_reclaimed_bytes",
            "Bytes reclaimed by the latest execution of each playbook that reclaimed any.",
            labels=["playbook"],
        )
        for (playbook,), (_execution, value) in _sorted(groups["reclaimed"]):
            reclaimed.add_metric([playbook], float(value))
        yield reclaimed

        restarted = CounterMetricFamily(
            "remediation_services_restarted",
            "Services restarted by playbooks.",
            labels=["playbook", "service"],
        )
        for (playbook, service), (value,) in _sorted(groups["restarted"]):
            restarted.add_metric([playbook, service], value)
        yield restarted

        oom = CounterMetricFamily(
            "remediation_oom_events_detected",
            "OOM kills detected while diagnosing services.",
            labels=["service"],
        )
        for (service,), (value,) in _sorted(groups["oom"]):
            oom.add_metric([service], value)
        yield oom

        vacuum = GaugeMetricFamily(
            "remediation_database_vacuum_rows_removed",
            "Dead rows removed by the latest vacuum of each database.",
            labels=["database"],
        )
        for (database,), (_execution, value) in _sorted(groups["vacuum"]):
            vacuum.add_metric([database], float(value))
        yield vacuum

    def _self_healing(
        self, groups: dict[str, dict[tuple[Any, ...], list[Any]]]
    ) -> Iterator[Metric]:
        rate = GaugeMetricFamily(
            "remediation_self_healing_success_rate",
            "Share of self-healing executions that succeeded, by diagnosed root cause (0-1).",
            labels=["root_cause"],
        )
        for (root_cause,), (total, successes) in _sorted(groups["root_cause"]):
            if total:
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

    def _gate(
        self, connection: sa.Connection, groups: dict[str, dict[tuple[Any, ...], list[Any]]]
    ) -> Iterator[Metric]:
        decisions = CounterMetricFamily(
            "remediation_gate_decisions",
            "Gate decisions by source, action and the check that decided.",
            labels=["source", "action", "check"],
        )
        for (source, action, check), (count,) in _sorted(groups["decisions"]):
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
        playbooks = sorted(playbook for (playbook,) in groups["playbooks"])
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


Groups = dict[tuple[Any, ...], list[Any]]


@dataclass(frozen=True, eq=False)
class _Aggregate:
    """One grouped aggregate over a span of a table's ids, and how two spans combine.

    `values` pairs each expression with "sum" or "max". With `latest`, the one key is a
    group column of impacts and the values are [newest execution id, its total]: the
    newest execution wins, and two parts of one execution add up.
    """

    name: str
    keys: tuple[sa.ColumnElement[Any], ...]
    values: tuple[tuple[sa.ColumnElement[Any], str], ...] = ()
    where: tuple[sa.ColumnElement[bool], ...] = ()
    latest: bool = False

    def rows(
        self, connection: sa.Connection, table: sa.Table, lo: int, hi: int
    ) -> Iterator[tuple[tuple[Any, ...], list[Any]]]:
        span = (table.c.id > lo, table.c.id <= hi)
        if self.latest:
            group = self.keys[0]
            newest = (
                sa.select(group.label("subject"), sa.func.max(table.c.execution_id).label("run"))
                .where(*self.where, *span)
                .group_by(group)
                .subquery()
            )
            query = (
                sa.select(newest.c.subject, newest.c.run, sa.func.sum(table.c.value))
                .select_from(
                    table.join(
                        newest,
                        sa.and_(table.c.execution_id == newest.c.run, group == newest.c.subject),
                    )
                )
                .where(*self.where, *span)
                .group_by(newest.c.subject, newest.c.run)
            )
            for subject, run, total in connection.execute(query):
                yield (subject,), [run, total]
            return
        query = (
            sa.select(*self.keys, *(expression for expression, _how in self.values))
            .where(*self.where, *span)
            .group_by(*self.keys)
        )
        width = len(self.keys)
        for row in connection.execute(query):
            yield tuple(row[:width]), list(row[width:])

    def combine(self, into: Groups, key: tuple[Any, ...], values: list[Any]) -> None:
        old = into.get(key)
        if old is None:
            into[key] = list(values)
        elif self.latest:
            if values[0] > old[0]:
                into[key] = list(values)
            elif values[0] == old[0]:
                old[1] = (old[1] or 0) + (values[1] or 0)
        else:
            for n, ((_expression, how), value) in enumerate(zip(self.values, values, strict=True)):
                if value is None:
                    continue
                if old[n] is None:
                    old[n] = value
                else:
                    old[n] = old[n] + value if how == "sum" else max(old[n], value)

    def merged(self, settled: Groups, rest: Groups) -> Groups:
        out = {key: list(values) for key, values in settled.items()}
        for key, values in rest.items():
            self.combine(out, key, values)
        return out


class _Settled:
    """A table's aggregates over its ids up to `upto`: rows that will not change."""

    def __init__(self, aggregates: Sequence[_Aggregate]) -> None:
        self.aggregates = aggregates
        self.upto = 0
        self.stamp: Any = None  # the time column of row `upto`
        self.groups: dict[str, Groups] = {aggregate.name: {} for aggregate in aggregates}

    def add(self, connection: sa.Connection, table: sa.Table, *, lo: int, hi: int) -> None:
        for aggregate in self.aggregates:
            into = self.groups[aggregate.name]
            for key, values in aggregate.rows(connection, table, lo, hi):
                aggregate.combine(into, key, values)

    def holds(
        self, connection: sa.Connection, table: sa.Table, stamp: sa.ColumnElement[Any]
    ) -> bool:
        """Whether what was counted is still there: the row at `upto` is unchanged (a store
        restored from a backup or emptied is counted again from the start)."""
        if self.upto == 0:
            return True
        now = connection.execute(sa.select(stamp).where(table.c.id == self.upto)).scalar()
        return bool(now == self.stamp)


def _aggregates_of_executions(settings: Settings) -> tuple[_Aggregate, ...]:
    e = t.executions
    buckets = settings.metrics.duration_buckets
    finished = e.c.status.in_(STATUSES)
    count: tuple[sa.ColumnElement[Any], str] = (sa.func.count(), "sum")
    return (
        _Aggregate("by_status", (e.c.playbook, e.c.status), (count,), (finished,)),
        _Aggregate(
            "last_success",
            (e.c.playbook,),
            ((sa.func.max(e.c.finished_at), "max"),),
            (e.c.status == "success",),
        ),
        _Aggregate(
            "duration",
            (e.c.playbook,),
            (
                count,
                (sa.func.sum(e.c.duration_seconds), "sum"),
                *(
                    (sa.func.sum(sa.case((e.c.duration_seconds <= bound, 1), else_=0)), "sum")
                    for bound in buckets
                ),
            ),
            (e.c.duration_seconds.is_not(None), finished),
        ),
        _Aggregate(
            "root_cause",
            (e.c.root_cause,),
            (count, (sa.func.sum(sa.case((e.c.status == "success", 1), else_=0)), "sum")),
            (e.c.root_cause.is_not(None), e.c.status.in_(("success", "failure", "timeout"))),
        ),
        _Aggregate("playbooks", (e.c.playbook,), (count,)),
    )


_AGGREGATES_OF_DECISIONS = (
    _Aggregate(
        "decisions",
        (t.decisions.c.source, t.decisions.c.action, t.decisions.c.check_name),
        ((sa.func.count(), "sum"),),
    ),
)
_AGGREGATES_OF_IMPACTS = (
    _Aggregate(
        "reclaimed",
        (t.impacts.c.playbook,),
        (),
        (t.impacts.c.kind == "bytes_reclaimed",),
        latest=True,
    ),
    _Aggregate(
        "restarted",
        (t.impacts.c.playbook, t.impacts.c.subject),
        ((sa.func.sum(t.impacts.c.value), "sum"),),
        (t.impacts.c.kind == "service_restarted",),
    ),
    _Aggregate(
        "oom",
        (t.impacts.c.subject,),
        ((sa.func.sum(t.impacts.c.value), "sum"),),
        (t.impacts.c.kind == "oom_detected",),
    ),
    _Aggregate(
        "vacuum", (t.impacts.c.subject,), (), (t.impacts.c.kind == "rows_removed",), latest=True
    ),
)


def _sorted(groups: Groups) -> list[tuple[tuple[Any, ...], list[Any]]]:
    return sorted(groups.items(), key=lambda item: tuple("" if k is None else k for k in item[0]))


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
