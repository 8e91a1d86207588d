"""Recommendations: rules over the history, each citing the figures that triggered it.

| rule | fires when (within the window) |
|---|---|
| memory-limit | a service was OOM-killed 3 or more times |
| too-frequent | a playbook ran from an alert or the autonomous loop 3+ times a week on average |
| circuit-breaker | a playbook's circuit breaker blocked a request |
| always-approved | 3+ escalations of a playbook were all approved (none rejected or expired) |
| forecast-accuracy | a resource's scored forecasts (min_executions or more) average below 60% |
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa

from remediate.analytics.summary import Summary, index_keys, summarize
from remediate.analytics.trends import REFUSED
from remediate.analytics.window import Window, iso, unindexed
from remediate.config.models import Settings
from remediate.store import Store
from remediate.store import tables as t

OOM_KILLS = 3
RUNS_PER_WEEK = 3.0
APPROVALS = 3
ACCURACY = 0.6
TRIGGERED = ("webhook", "autonomous")


@dataclass(frozen=True)
class Recommendation:
    rule: str
    subject: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Recommendations:
    window: Window
    items: tuple[Recommendation, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"window": self.window.as_dict(), "recommendations": [asdict(i) for i in self.items]}


def recommendations(
    store: Store, settings: Settings, window: Window, *, summary: Summary | None = None
) -> Recommendations:
    """summary: the window's runs, when the caller has read them already (`monthly`)."""
    if summary is not None and summary.window != window:
        raise ValueError("recommendations need the summary of their window")
    with store.reading() as connection:
        items = [
            *_memory_limits(connection, settings, window),
            *_too_frequent(summary or summarize(connection, window), window),
            *_circuit_breakers(connection, window),
            *_always_approved(connection, settings, window),
            *_forecast_accuracy(connection, settings, window),
        ]
    return Recommendations(window, tuple(items))


def _memory_limits(
    connection: sa.Connection, settings: Settings, window: Window
) -> list[Recommendation]:
    i = t.impacts
    # One range per service and playbook of the report index (migration 0007), read in
    # service order: no pass over other kinds, no sort.
    keys = index_keys(connection, (i.c.subject, i.c.playbook), (i.c.kind == "oom_detected",))
    rows = connection.execute(
        sa.select(i.c.subject, sa.func.sum(i.c.value), sa.func.min(i.c.at), sa.func.max(i.c.at))
        .where(
            i.c.kind == "oom_detected",
            i.c.subject.in_(sorted({subject for subject, _ in keys})),
            i.c.playbook.in_(sorted({playbook for _, playbook in keys})),
            window.contains(i.c.at),
        )
        .group_by(i.c.subject)
        .having(sa.func.sum(i.c.value) >= OOM_KILLS)
        .order_by(sa.func.sum(i.c.value).desc(), i.c.subject)
    )
    found = []
    for service, kills, first, last in rows:
        declared = settings.service(service)
        limit = declared.memory_limit if declared is not None else None
        now = f"limit now {limit / 2**20:.0f} MiB" if limit else "no limit set"
        found.append(
            Recommendation(
                "memory-limit",
                service,
                f"raise the memory limit of {service}: OOM-killed {kills:g} times in "
                f"{window.days:.0f} days ({now})",
                {"oom_kills": int(kills), "first": iso(first), "last": iso(last), "limit": limit},
            )
        )
    return found


def _too_frequent(summary: Summary, window: Window) -> list[Recommendation]:
    weeks = max(window.weeks, 1.0)
    runs = summary.totals(lambda runs: runs.playbook, lambda runs: runs.source in TRIGGERED)
    found = [
        (name, totals.first_attempts)
        for name, totals in runs.items()
        if totals.first_attempts >= RUNS_PER_WEEK * weeks
    ]
    return [
        Recommendation(
            "too-frequent",
            playbook,
            f"{playbook} ran {runs} times from alerts or forecasts in {window.days:.0f} days "
            f"({runs / weeks:.1f} a week): its trigger threshold looks too aggressive",
            {"runs": int(runs), "per_week": round(runs / weeks, 2)},
        )
        for playbook, runs in sorted(found, key=lambda row: (-row[1], row[0]))
    ]


def _circuit_breakers(connection: sa.Connection, window: Window) -> list[Recommendation]:
    d, e = t.decisions, t.executions
    rows = connection.execute(
        sa.select(
            d.c.playbook, sa.func.count(), sa.func.min(d.c.created_at), sa.func.max(d.c.created_at)
        )
        .where(
            window.contains(d.c.created_at),
            REFUSED,  # answered from the index of blocks and escalations
            d.c.action == "block",
            d.c.check_name == "circuit_breaker",
        )
        .group_by(d.c.playbook)
        .order_by(d.c.playbook)
    ).all()
    found = []
    for playbook, blocked, first, last in rows:
        failure = connection.execute(
            sa.select(e.c.id, e.c.summary)
            .where(
                e.c.playbook == playbook,
                e.c.status.in_(("failure", "timeout")),
                e.c.admitted_at < last,
                e.c.admitted_at >= window.start,
            )
            .order_by(e.c.admitted_at.desc(), e.c.id.desc())
            .limit(1)
        ).first()
        why = f"; last failure: {failure.summary}" if failure and failure.summary else ""
        found.append(
            Recommendation(
                "circuit-breaker",
                playbook,
                f"the circuit breaker of {playbook} opened and blocked {blocked} request(s) "
                f"between {iso(first)} and {iso(last)}: find why it keeps failing{why}",
                {
                    "blocked": int(blocked),
                    "first": iso(first),
                    "last": iso(last),
                    "last_failed_execution": failure.id if failure else None,
                },
            )
        )
    return found


def _always_approved(
    connection: sa.Connection, settings: Settings, window: Window
) -> list[Recommendation]:
    a, d = t.approvals, t.decisions
    approved = sa.func.sum(sa.case((a.c.status == "approved", 1), else_=0))
    total = sa.func.count()
    rows = connection.execute(
        sa.select(d.c.playbook, approved, total)
        .select_from(a.join(d, d.c.id == a.c.decision_id))
        .where(window.contains(a.c.created_at), a.c.status != "pending")
        .group_by(d.c.playbook)
        .having(sa.and_(approved == total, total >= APPROVALS))
        .order_by(d.c.playbook)
    )
    threshold = settings.safety.confidence_threshold
    return [
        Recommendation(
            "always-approved",
            playbook,
            f"every escalation of {playbook} was approved ({count} of {count}): raise its "
            f"routes' confidence to {threshold:g}% or more, or stop requiring confirmation",
            {"approved": int(count), "escalations": int(count)},
        )
        for playbook, count, _total in rows
    ]


def _forecast_accuracy(
    connection: sa.Connection, settings: Settings, window: Window
) -> list[Recommendation]:
    f = t.forecasts
    mean = sa.func.avg(f.c.score)
    count = sa.func.count(f.c.score)
    rows = connection.execute(
        # unindexed: one pass in table order and a sort, not a lookup per row through the
        # resource index.
        sa.select(unindexed(f.c.resource), mean, count)
        .where(window.contains(f.c.scored_at), f.c.score.is_not(None))
        .group_by(unindexed(f.c.resource))
        .having(sa.and_(mean < ACCURACY, count >= settings.analytics.min_executions))
        .order_by(mean, unindexed(f.c.resource))
    )
    return [
        Recommendation(
            "forecast-accuracy",
            resource,
            f"forecasts for {resource} scored {100 * float(accuracy):.0f}% on average over "
            f"{scored}: the autonomous loop acts only at {100 * ACCURACY:.0f}% or better; "
            "check the trend model or the resource's sampling",
            {"accuracy": round(float(accuracy), 4), "forecasts": int(scored)},
        )
        for resource, accuracy, scored in rows
    ]
