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

import sqlalchemy as sa
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from remediate.config.models import Settings
from remediate.store import tables as t

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


def collect(connection: sa.Connection, settings: Settings) -> Iterator[Metric]:
    r, s = t.chain_runs, t.chain_steps
    executions = CounterMetricFamily(
        "remediation_chain_executions",
        "Chain runs by final status.",
        labels=["chain", "status"],
    )
    rows = connection.execute(
        sa.select(r.c.chain, r.c.status, sa.func.count())
        .where(r.c.status.in_(RUN_STATUSES))
        .group_by(r.c.chain, r.c.status)
        .order_by(r.c.chain, r.c.status)
    )
    for chain, status, count in rows:
        executions.add_metric([chain, status], count)
    yield executions

    buckets = settings.metrics.duration_buckets
    duration = r.c.finished_at - r.c.started_at
    cumulative = [sa.func.sum(sa.case((duration <= bound, 1), else_=0)) for bound in buckets]
    histogram = HistogramMetricFamily(
        "remediation_chain_duration_seconds",
        "How long finished chain runs took, start to end.",
        labels=["chain"],
    )
    rows = connection.execute(
        sa.select(r.c.chain, sa.func.count(), sa.func.sum(duration), *cumulative)
        .where(r.c.finished_at.is_not(None), r.c.status.in_(RUN_STATUSES))
        .group_by(r.c.chain)
        .order_by(r.c.chain)
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
    rows = connection.execute(
        sa.select(r.c.chain, s.c.playbook, s.c.status, sa.func.count())
        .select_from(s.join(r, r.c.id == s.c.run_id))
        .where(s.c.status.in_(STEP_STATUSES))
        .group_by(r.c.chain, s.c.playbook, s.c.status)
        .order_by(r.c.chain, s.c.playbook, s.c.status)
    )
    for chain, step, status, count in rows:
        steps.add_metric([chain, step, status], count)
    yield steps

    interrupted = GaugeMetricFamily(
        "remediation_chain_runs_interrupted",
        "Chain runs interrupted (their process died) and not resumed yet.",
        labels=["chain"],
    )
    rows = connection.execute(
        sa.select(r.c.chain, sa.func.count())
        .where(r.c.status == "interrupted")
        .group_by(r.c.chain)
        .order_by(r.c.chain)
    )
    for chain, count in rows:
        interrupted.add_metric([chain], count)
    yield interrupted
