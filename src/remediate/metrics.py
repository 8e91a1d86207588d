"""Prometheus metrics, derived from the store at collection time, so counters survive restarts.

The seed's nine families keep their names (a contract); gate, breaker, pause,
queue and approval families join them. Served at /metrics and written as a
node-exporter textfile (temp file + rename) after every execution.

The queries are plain SQL, the same on SQLite and PostgreSQL, run on the driver's
connection (`Store.sql_reading`): a scrape or a textfile needs no SQLAlchemy.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from remediate.store import GateView, Sql, Store

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
        with self._lock, self.store.sql_reading() as db:
            groups = self._groups(db)
            yield from self._executions(db, groups)
            yield from self._duration(groups)
            yield from self._impacts(groups)
            yield from self._self_healing(groups)
            yield from self._accuracy(db)
            yield from self._gate(db, groups)
            from remediate.chains.metrics import collect as chain_metrics

            yield from chain_metrics(db, self.settings)

    def _groups(self, db: Sql) -> dict[str, dict[tuple[Any, ...], list[Any]]]:
        """Every aggregate: what is kept, advanced to the settled rows, plus the rest."""
        [(unfinished,)] = db.rows(
            "SELECT min(id) FROM executions WHERE status IN ('queued', 'running')"
        )
        tables = {"executions": "admitted_at", "decisions": "created_at", "impacts": "at"}
        merged: dict[str, dict[tuple[Any, ...], list[Any]]] = {}
        for table, stamp_column in tables.items():
            aggregates = self._aggregates[table]
            [(newest,)] = db.rows(f"SELECT max(id) FROM {table}")  # noqa: S608
            newest = newest or 0
            upto = newest if table != "executions" or unfinished is None else unfinished - 1
            settled = self._settled.get(table)
            if settled is None or not settled.holds(db, table, stamp_column):
                settled = self._settled[table] = _Settled(aggregates)
            if upto > settled.upto:
                settled.add(db, table, lo=settled.upto, hi=upto)
                settled.upto = upto
                settled.stamp = _stamp(db, table, stamp_column, upto)
            rest = _Settled(aggregates)
            if newest > settled.upto:
                rest.add(db, table, lo=settled.upto, hi=newest)
            for aggregate in aggregates:
                merged[aggregate.name] = aggregate.merged(
                    settled.groups[aggregate.name], rest.groups[aggregate.name]
                )
        return merged

    def _executions(
        self, db: Sql, groups: dict[str, dict[tuple[Any, ...], list[Any]]]
    ) -> Iterator[Metric]:
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
        counts: dict[str, int] = dict(
            db.rows(
                "SELECT status, count(*) FROM executions"
                " WHERE status IN ('queued', 'running') GROUP BY status"
            )
        )
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

    def _accuracy(self, db: Sql) -> Iterator[Metric]:
        from remediate.autonomous.accuracy import rolling_by_resource

        accuracy = GaugeMetricFamily(
            "remediation_predictive_accuracy",
            "Mean score (0-1) of the forecasts scored in the rolling window, by resource.",
            labels=["resource"],
        )
        scores = rolling_by_resource(
            db,
            now=self.clock.now(),
            window_days=self.settings.autonomous.accuracy.window_days,
        )
        for resource, score in sorted(scores.items()):
            accuracy.add_metric([resource], score)
        yield accuracy

    def _gate(
        self, db: Sql, groups: dict[str, dict[tuple[Any, ...], list[Any]]]
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

        view = GateView(db.connection)
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

        pending = GaugeMetricFamily(
            "remediation_approvals_pending", "Escalations waiting for an operator."
        )
        [(count,)] = db.rows(
            "SELECT count(*) FROM approvals WHERE status = 'pending' AND expires_at > :now",
            now=now,
        )
        pending.add_metric([], count or 0)
        yield pending


def _bound(value: float) -> str:
    return str(float(value))


Groups = dict[tuple[Any, ...], list[Any]]


@dataclass(frozen=True, eq=False)
class _Aggregate:
    """One grouped aggregate over a span of a table's ids, and how two spans combine.

    `keys` are columns, `values` pair an SQL expression with "sum" or "max", `where`
    holds SQL conditions (with `parameters`). With `latest`, the one key is a group
    column of impacts and the values are [newest execution id, its total]: the newest
    execution wins, and two parts of one execution add up.
    """

    name: str
    keys: tuple[str, ...]
    values: tuple[tuple[str, str], ...] = ()
    where: tuple[str, ...] = ()
    latest: bool = False
    parameters: tuple[tuple[str, Any], ...] = ()

    def rows(
        self, db: Sql, table: str, lo: int, hi: int
    ) -> Iterator[tuple[tuple[Any, ...], list[Any]]]:
        where = " AND ".join((*self.where, "id > :lo", "id <= :hi"))
        parameters = dict(self.parameters, lo=lo, hi=hi)
        if self.latest:
            group = self.keys[0]
            query = (
                f"SELECT newest.subject, newest.run, sum({table}.value) FROM {table} JOIN"  # noqa: S608
                f" (SELECT {group} AS subject, max(execution_id) AS run FROM {table}"
                f" WHERE {where} GROUP BY {group}) AS newest"
                f" ON {table}.execution_id = newest.run AND {table}.{group} = newest.subject"
                f" WHERE {where} GROUP BY newest.subject, newest.run"
            )
            for subject, run, total in db.rows(query, **parameters):
                yield (subject,), [run, total]
            return
        keys = ", ".join(self.keys)
        values = "".join(f", {expression}" for expression, _how in self.values)
        query = f"SELECT {keys}{values} FROM {table} WHERE {where} GROUP BY {keys}"  # noqa: S608
        width = len(self.keys)
        for row in db.rows(query, **parameters):
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

    def add(self, db: Sql, table: str, *, lo: int, hi: int) -> None:
        for aggregate in self.aggregates:
            into = self.groups[aggregate.name]
            for key, values in aggregate.rows(db, table, lo, hi):
                aggregate.combine(into, key, values)

    def holds(self, db: Sql, table: str, stamp_column: str) -> bool:
        """Whether what was counted is still there: the row at `upto` is unchanged (a store
        restored from a backup or emptied is counted again from the start)."""
        if self.upto == 0:
            return True
        return bool(_stamp(db, table, stamp_column, self.upto) == self.stamp)


def _stamp(db: Sql, table: str, column: str, row_id: int) -> Any:
    rows = db.rows(f"SELECT {column} FROM {table} WHERE id = :id", id=row_id)  # noqa: S608
    return rows[0][0] if rows else None


_FINISHED = "status IN ({})".format(", ".join(f"'{status}'" for status in STATUSES))
_COUNT = ("count(*)", "sum")


def _aggregates_of_executions(settings: Settings) -> tuple[_Aggregate, ...]:
    buckets = settings.metrics.duration_buckets
    return (
        _Aggregate("by_status", ("playbook", "status"), (_COUNT,), (_FINISHED,)),
        _Aggregate(
            "last_success", ("playbook",), (("max(finished_at)", "max"),), ("status = 'success'",)
        ),
        _Aggregate(
            "duration",
            ("playbook",),
            (
                _COUNT,
                ("sum(duration_seconds)", "sum"),
                *(
                    (f"sum(CASE WHEN duration_seconds <= :bucket_{n} THEN 1 ELSE 0 END)", "sum")
                    for n in range(len(buckets))
                ),
            ),
            ("duration_seconds IS NOT NULL", _FINISHED),
            parameters=tuple((f"bucket_{n}", float(bound)) for n, bound in enumerate(buckets)),
        ),
        _Aggregate(
            "root_cause",
            ("root_cause",),
            (_COUNT, ("sum(CASE WHEN status = 'success' THEN 1 ELSE 0 END)", "sum")),
            ("root_cause IS NOT NULL", "status IN ('success', 'failure', 'timeout')"),
        ),
        _Aggregate("playbooks", ("playbook",), (_COUNT,)),
    )


_AGGREGATES_OF_DECISIONS = (_Aggregate("decisions", ("source", "action", "check_name"), (_COUNT,)),)
_AGGREGATES_OF_IMPACTS = (
    _Aggregate("reclaimed", ("playbook",), (), ("kind = 'bytes_reclaimed'",), latest=True),
    _Aggregate(
        "restarted",
        ("playbook", "subject"),
        (("sum(value)", "sum"),),
        ("kind = 'service_restarted'",),
    ),
    _Aggregate("oom", ("subject",), (("sum(value)", "sum"),), ("kind = 'oom_detected'",)),
    _Aggregate("vacuum", ("subject",), (), ("kind = 'rows_removed'",), latest=True),
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
