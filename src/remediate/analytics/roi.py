"""Return on investment: incidents prevented, interventions avoided, resolution and time saved.

- incidents prevented: critical forecasts in the window followed, within an hour,
  by a successful execution from the autonomous loop (the preemptive run);
- manual interventions avoided: successful executions from an automatic
  trigger (webhook, schedule, autonomous, chain), every attempt's success once;
- resolution time: from the alert's start to the execution's end, and to the
  resolved notification (same fingerprint and start) where one was recorded;
- time saved: for each avoided intervention, the playbook's manual baseline
  minus the execution's duration, never below zero.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa

from remediate.analytics.effectiveness import manual_minutes
from remediate.analytics.window import Window, unindexed
from remediate.config.models import Analytics
from remediate.store import Store
from remediate.store import tables as t

AUTOMATIC = ("webhook", "schedule", "autonomous", "chain")
PREVENTION_SECONDS = 3600.0


@dataclass(frozen=True)
class PlaybookReturn:
    playbook: str
    interventions_avoided: int
    manual_minutes: float
    mean_duration_seconds: float | None
    alerts_fixed: int
    mean_seconds_to_fix: float | None
    alerts_resolved: int
    mean_seconds_to_resolved: float | None
    time_saved_seconds: float


@dataclass(frozen=True)
class Return:
    window: Window
    critical_forecasts: int
    incidents_prevented: int
    prevented_by_resource: dict[str, int]
    interventions_avoided: int
    time_saved_seconds: float
    mean_seconds_to_fix: float | None
    playbooks: tuple[PlaybookReturn, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "window": self.window.as_dict(),
            "critical_forecasts": self.critical_forecasts,
            "incidents_prevented": self.incidents_prevented,
            "prevented_by_resource": self.prevented_by_resource,
            "interventions_avoided": self.interventions_avoided,
            "time_saved_seconds": round(self.time_saved_seconds, 3),
            "time_saved_hours": round(self.time_saved_seconds / 3600, 2),
            "mean_seconds_to_fix": self.mean_seconds_to_fix,
            "playbooks": [asdict(item) for item in self.playbooks],
        }


def roi(store: Store, analytics: Analytics, window: Window) -> Return:
    e, d, r, f = t.executions, t.decisions, t.requests, t.forecasts
    # Status and source filters sit in the sums: a month of a busy store is most of the
    # table, and SQLite reads it faster in order than through the status index.
    avoided = sa.and_(e.c.status == "success", e.c.source.in_(AUTOMATIC))
    # The manual baseline per playbook, as SQL, so each row's saving is clipped at zero.
    baseline_seconds: sa.ColumnElement[float] = (
        sa.case(
            {name: minutes * 60 for name, minutes in analytics.manual_minutes.items()},
            value=e.c.playbook,
            else_=analytics.default_manual_minutes * 60,
        )
        if analytics.manual_minutes
        else sa.literal(analytics.default_manual_minutes * 60, sa.Float)
    )
    duration = sa.func.coalesce(e.c.duration_seconds, 0.0)
    saving = sa.case(
        (sa.and_(avoided, baseline_seconds > duration), baseline_seconds - duration), else_=0.0
    )
    saved_query = (
        sa.select(
            unindexed(e.c.playbook),
            sa.func.sum(sa.case((avoided, 1), else_=0)),
            sa.func.avg(sa.case((avoided, e.c.duration_seconds))),
            sa.func.sum(saving),
        )
        .where(window.covers(e.c.admitted_at))
        .group_by(unindexed(e.c.playbook))
    )
    # Alertmanager repeats an alert's startsAt in its resolved notification.
    resolved = (
        sa.select(
            r.c.fingerprint,
            r.c.alert_starts_at,
            sa.func.min(r.c.alert_ends_at).label("ends_at"),
        )
        .where(
            r.c.alert_ends_at.is_not(None),
            r.c.fingerprint.is_not(None),
            r.c.created_at >= window.start,
        )
        .group_by(r.c.fingerprint, r.c.alert_starts_at)
        .subquery()
    )
    resolution_query = (
        sa.select(
            unindexed(e.c.playbook),
            sa.func.count(),
            sa.func.avg(e.c.finished_at - r.c.alert_starts_at),
            sa.func.count(resolved.c.ends_at),
            sa.func.avg(resolved.c.ends_at - r.c.alert_starts_at),
        )
        .select_from(
            e.join(d, d.c.id == e.c.decision_id)
            .join(r, r.c.id == d.c.request_id)
            .outerjoin(
                resolved,
                sa.and_(
                    resolved.c.fingerprint == r.c.fingerprint,
                    resolved.c.alert_starts_at == r.c.alert_starts_at,
                ),
            )
        )
        .where(
            window.covers(e.c.admitted_at),
            # Only executions that answered an alert carry its name: join just those.
            e.c.alertname.is_not(None),
            # `|| ''` keeps the status index out: nine runs in ten succeed.
            (e.c.status + "") == "success",
            r.c.alert_starts_at.is_not(None),
        )
        .group_by(unindexed(e.c.playbook))
    )
    # For each critical forecast, the first successful autonomous run at or after it: one
    # ordered pass over both (a window function), not a lookup per forecast.
    events = sa.union_all(
        sa.select(
            f.c.created_at.label("at"), sa.literal(0).label("kind"), f.c.resource.label("resource")
        ).where(window.contains(f.c.created_at), f.c.severity == "critical"),
        sa.select(e.c.admitted_at, sa.literal(1), sa.literal("")).where(
            e.c.admitted_at + 0 >= window.start,
            e.c.admitted_at + 0 < window.end + PREVENTION_SECONDS,
            e.c.source == "autonomous",
            (e.c.status + "") == "success",
        ),
    ).subquery()
    next_fix = (
        sa.func.min(sa.case((events.c.kind == 1, events.c.at)))
        .over(order_by=(events.c.at, events.c.kind), rows=(0, None))
        .label("next_fix")
    )
    ordered = sa.select(events.c.at, events.c.kind, events.c.resource, next_fix).subquery()
    prevented_query = (
        sa.select(
            ordered.c.resource,
            sa.func.count(),
            sa.func.sum(
                sa.case((ordered.c.next_fix < ordered.c.at + PREVENTION_SECONDS, 1), else_=0)
            ),
        )
        .where(ordered.c.kind == 0)
        .group_by(ordered.c.resource)
    )
    with store.reading() as connection:
        saved = {row[0]: row[1:] for row in connection.execute(saved_query)}
        resolution = {row[0]: row[1:] for row in connection.execute(resolution_query)}
        prevented_rows = connection.execute(prevented_query).all()

    playbooks = []
    for name in sorted({name for name, row in saved.items() if row[0]} | set(resolution)):
        count, mean_duration, seconds = saved.get(name, (0, None, 0.0))
        fixes, to_fix, resolutions, to_resolved = resolution.get(name, (0, None, 0, None))
        playbooks.append(
            PlaybookReturn(
                playbook=name,
                interventions_avoided=int(count),
                manual_minutes=manual_minutes(analytics, name),
                mean_duration_seconds=_float(mean_duration),
                alerts_fixed=int(fixes),
                mean_seconds_to_fix=_float(to_fix),
                alerts_resolved=int(resolutions),
                mean_seconds_to_resolved=_float(to_resolved),
                time_saved_seconds=float(seconds or 0.0),
            )
        )
    fixes_total = sum(item.alerts_fixed for item in playbooks)
    return Return(
        window=window,
        critical_forecasts=sum(int(row[1]) for row in prevented_rows),
        incidents_prevented=sum(int(row[2] or 0) for row in prevented_rows),
        prevented_by_resource={
            resource: int(count or 0) for resource, _, count in sorted(prevented_rows) if count
        },
        interventions_avoided=sum(item.interventions_avoided for item in playbooks),
        time_saved_seconds=sum(item.time_saved_seconds for item in playbooks),
        mean_seconds_to_fix=(
            sum(item.alerts_fixed * (item.mean_seconds_to_fix or 0.0) for item in playbooks)
            / fixes_total
            if fixes_total
            else None
        ),
        playbooks=tuple(playbooks),
    )


def _float(value: Any) -> float | None:
    return float(value) if value is not None else None
