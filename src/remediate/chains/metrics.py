"""Chain metrics, derived from `chain_runs` and `chain_steps` at collection time, so they
survive restarts like every other family (see remediate.metrics).

    remediation_chain_executions_total{chain,status}        finished runs
    remediation_chain_duration_seconds{chain}               histogram of finished runs
    remediation_chain_step_executions_total{chain,step,status}  steps that reached an outcome

    remediation_chain_runs_interrupted{chain}                runs waiting for `chain resume`

`step` is the step's playbook name. Running and interrupted runs are not counted yet.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from remediate.config.models import Settings
from remediate.store import Sql

__all__ = ["collect"]

# Final statuses only: an interrupted run may still be resumed, so it is a gauge, not a count.
RUN_STATUSES = ("success", "failure", "aborted", "timeout")
STEP_STATUSES = (
    "success",
    "failure",
    "timeout",
    "skipped",
    "blocked",
    "escalated",
    "not_run",
    "rolled_back",  # a success undone later moves here from success (the one non-final move)
)
_RUN_FINAL = "status IN ({})".format(", ".join(f"'{status}'" for status in RUN_STATUSES))
_STEP_FINAL = "status IN ({})".format(", ".join(f"'{status}'" for status in STEP_STATUSES))


def collect(db: Sql, settings: Settings) -> Iterator[Metric]:
    executions = CounterMetricFamily(
        "remediation_chain_executions",
        "Chain runs by final status.",
        labels=["chain", "status"],
    )
    rows = db.rows(
        f"SELECT chain, status, count(*) FROM chain_runs WHERE {_RUN_FINAL}"  # noqa: S608
        " GROUP BY chain, status ORDER BY chain, status"
    )
    for chain, status, count in rows:
        executions.add_metric([chain, status], count)
    yield executions

    buckets = settings.metrics.duration_buckets
    duration = "(finished_at - started_at)"
    cumulative = "".join(
        f", sum(CASE WHEN {duration} <= :bucket_{n} THEN 1 ELSE 0 END)" for n in range(len(buckets))
    )
    histogram = HistogramMetricFamily(
        "remediation_chain_duration_seconds",
        "How long finished chain runs took, start to end.",
        labels=["chain"],
    )
    rows = db.rows(
        f"SELECT chain, count(*), sum({duration}){cumulative} FROM chain_runs"  # noqa: S608
        f" WHERE finished_at IS NOT NULL AND {_RUN_FINAL} GROUP BY chain ORDER BY chain",
        **{f"bucket_{n}": float(bound) for n, bound in enumerate(buckets)},
    )
    for chain, count, total, *counts in rows:
        points = [
            (str(float(bound)), int(value or 0))
            for bound, value in zip(buckets, counts, strict=True)
        ]
        points.append(("+Inf", int(count)))
        histogram.add_metric([chain], points, float(total or 0.0))
    yield histogram

    steps = CounterMetricFamily(
        "remediation_chain_step_executions",
        "Chain steps by outcome; step is the playbook the step runs.",
        labels=["chain", "step", "status"],
    )
    rows = db.rows(
        "SELECT chain_runs.chain, chain_steps.playbook, chain_steps.status, count(*)"  # noqa: S608
        " FROM chain_steps JOIN chain_runs ON chain_runs.id = chain_steps.run_id"
        f" WHERE chain_steps.{_STEP_FINAL}"
        " GROUP BY chain_runs.chain, chain_steps.playbook, chain_steps.status"
        " ORDER BY chain_runs.chain, chain_steps.playbook, chain_steps.status"
    )
    for chain, step, status, count in rows:
        steps.add_metric([chain, step, status], count)
    yield steps

    interrupted = GaugeMetricFamily(
        "remediation_chain_runs_interrupted",
        "Chain runs interrupted (their process died) and not resumed yet.",
        labels=["chain"],
    )
    rows = db.rows(
        "SELECT chain, count(*) FROM chain_runs WHERE status = 'interrupted'"
        " GROUP BY chain ORDER BY chain"
    )
    for chain, count in rows:
        interrupted.add_metric([chain], count)
    yield interrupted
