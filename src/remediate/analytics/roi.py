"""Return on investment: incidents prevented, interventions avoided, resolution and time saved.

- incidents prevented: critical forecasts in the window followed, within an hour
  (at or after the forecast), by a successful execution from the autonomous loop
  (the preemptive run);
- manual interventions avoided: successful executions from an automatic
  trigger (webhook, schedule, autonomous, chain), every attempt's success once;
- resolution time: from the alert's start to the execution's end, and to the
  resolved notification (same fingerprint and start) where one was recorded;
- time saved: for each avoided intervention, the playbook's manual baseline
  minus the execution's duration, never below zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import sqlalchemy as sa

from remediate.analytics.effectiveness import manual_minutes
from remediate.analytics.summary import Summary, Totals, alongside, summarize
from remediate.analytics.window import Window, unindexed
from remediate.config.models import Analytics
from remediate.store import Store
from remediate.store import tables as t

AUTOMATIC = ("webhook", "schedule", "autonomous", "chain")
PREVENTION_SECONDS = 3600.0
# (source, status) of the runs that prevent an incident: the autonomous loop's successes.
FIXED = ("autonomous", "success")


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


@dataclass(frozen=True)
class Resolution:
    """A playbook's fixes of alerts in the window, and how long the alerts took to end."""

    alerts_fixed: int
    mean_seconds_to_fix: float | None
    alerts_resolved: int
    mean_seconds_to_resolved: float | None


def roi(
    store: Store,
    analytics: Analytics,
    window: Window,
    *,
    summary: Summary | None = None,
    resolutions: dict[str, Resolution] | None = None,
) -> Return:
    """summary: the window's runs priced with these `analytics`; resolutions: `resolved()`
    for the window; both when the caller has read them already (`monthly`), else read here.

    The resolutions are a join over every alert of the window, most of the time the report
    takes: they are read on a connection of their own, alongside everything else.
    """
    if summary is not None and (summary.window != window or summary.analytics != analytics):
        raise ValueError("ROI needs the summary of its window, priced with its analytics")
    with alongside(
        store, lambda: resolved(store, window) if resolutions is None else resolutions
    ) as resolution_of:
        with store.reading() as connection:
            summary = summary or summarize(connection, window, analytics=analytics)
            autonomous = sorted(
                {name for name, source, status in summary.run_keys if (source, status) == FIXED}
            )
            prevented_rows = connection.execute(_prevented(window, autonomous)).all()
        resolution = resolution_of()
    saved = summary.totals(
        lambda runs: runs.playbook,
        lambda runs: runs.status == "success" and runs.source in AUTOMATIC,
    )
    playbooks = []
    for name in sorted({name for name, totals in saved.items() if totals.count} | set(resolution)):
        avoided = saved.get(name, Totals())
        fixes = resolution.get(name, Resolution(0, None, 0, None))
        playbooks.append(
            PlaybookReturn(
                playbook=name,
                interventions_avoided=avoided.count,
                manual_minutes=manual_minutes(analytics, name),
                mean_duration_seconds=avoided.mean_duration,
                alerts_fixed=fixes.alerts_fixed,
                mean_seconds_to_fix=fixes.mean_seconds_to_fix,
                alerts_resolved=fixes.alerts_resolved,
                mean_seconds_to_resolved=fixes.mean_seconds_to_resolved,
                time_saved_seconds=avoided.saving_sum,
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


def resolved(store: Store, window: Window) -> dict[str, Resolution]:
    """Per playbook: alerts fixed in the window (successful runs that answered one), the mean
    seconds from the alert's start to the run's end, alerts resolved, the mean seconds to the
    resolved notification (the first one for the same fingerprint and start: Alertmanager
    repeats an alert's startsAt in its resolved notification)."""
    with store.reading() as connection:
        query = _resolution(window) if store.is_sqlite else _resolution_joined(window)
        rows = connection.execute(query).all()
    return {
        name: Resolution(int(fixed), _float(to_fix), int(ended), _float(to_end))
        for name, fixed, to_fix, ended, to_end in rows
    }


def _fixes(window: Window, *, in_table_order: bool) -> sa.Select[Any]:
    """The window's successful runs that answered an alert, with that alert's start and
    fingerprint, which each run carries (migration 0008). `in_table_order` (SQLite): a pass
    over the window in table order rather than a lookup per row through an index (`covers`,
    `unindexed`); PostgreSQL plans better without."""
    e = t.executions
    return sa.select(
        e.c.playbook,
        e.c.finished_at,
        e.c.alert_starts_at.label("starts_at"),
        e.c.fingerprint,
    ).where(
        window.covers(e.c.admitted_at) if in_table_order else window.contains(e.c.admitted_at),
        # Only executions that answered an alert carry its name and start.
        e.c.alertname.is_not(None),
        (unindexed(e.c.status) if in_table_order else e.c.status) == "success",
        e.c.alert_starts_at.is_not(None),
    )


def _resolution(window: Window) -> sa.Select[Any]:
    q = t.requests.alias("resolved")
    fixes = _fixes(window, in_table_order=True)
    # Each fix looks its resolution up in the index of resolved notifications (migration
    # 0007), in that index's order: sorting the fixes first costs less than looking them up
    # at random, on SQLite, which has no hash join; PostgreSQL sorts a little for nothing, but
    # a lookup per fix cannot go quadratic when its row estimates are off (a hash join would
    # then become a nested loop over every resolution per fix). OFFSET 0 keeps the lookup a
    # column of its own, made once per fix, not once per aggregate that reads it.
    e = t.executions
    ordered = fixes.order_by(e.c.fingerprint, e.c.alert_starts_at).subquery("fixes")
    ends_at = (
        sa.select(sa.func.min(q.c.alert_ends_at))
        .where(
            q.c.fingerprint == ordered.c.fingerprint,
            q.c.alert_starts_at == ordered.c.starts_at,
            q.c.alert_ends_at.is_not(None),
            q.c.created_at >= window.start,
        )
        .scalar_subquery()
    )
    joined = (
        sa.select(ordered.c.playbook, ordered.c.finished_at, ordered.c.starts_at)
        .add_columns(ends_at.label("ends_at"))
        .offset(0)
        .subquery("joined")
    )
    return sa.select(
        joined.c.playbook,
        sa.func.count(),
        sa.func.avg(joined.c.finished_at - joined.c.starts_at),
        sa.func.count(joined.c.ends_at),
        sa.func.avg(joined.c.ends_at - joined.c.starts_at),
    ).group_by(joined.c.playbook)


def _resolution_joined(window: Window) -> sa.Select[Any]:
    """`_resolution` for PostgreSQL: the fixes hash-joined to the resolved notifications
    grouped by (fingerprint, start), in one pass over each. The same rows in less time
    over a million executions (0.52 s instead of 0.85 with a lookup per fix), where the
    lookup per fix is made for SQLite, which has no hash join."""
    fixes = _fixes(window, in_table_order=False).subquery("fixes")
    q = t.requests.alias("resolved")
    resolutions = (
        sa.select(
            q.c.fingerprint, q.c.alert_starts_at, sa.func.min(q.c.alert_ends_at).label("ends_at")
        )
        .where(q.c.alert_ends_at.is_not(None), q.c.created_at >= window.start)
        .group_by(q.c.fingerprint, q.c.alert_starts_at)
        .subquery("resolutions")
    )
    joined = fixes.outerjoin(
        resolutions,
        sa.and_(
            resolutions.c.fingerprint == fixes.c.fingerprint,
            resolutions.c.alert_starts_at == fixes.c.starts_at,
        ),
    )
    return (
        sa.select(
            fixes.c.playbook,
            sa.func.count(),
            sa.func.avg(fixes.c.finished_at - fixes.c.starts_at),
            sa.func.count(resolutions.c.ends_at),
            sa.func.avg(resolutions.c.ends_at - fixes.c.starts_at),
        )
        .select_from(joined)
        .group_by(fixes.c.playbook)
    )


def _prevented(window: Window, autonomous: Sequence[str]) -> sa.Select[Any]:
    """Per resource: critical forecasts in the window, and how many of them a successful run
    from the autonomous loop (of the `autonomous` playbooks) followed within the hour.

    One range of the report index (playbook, source, status, time) per forecast.
    """
    e, f = t.executions, t.forecasts
    followed = (
        sa.select(sa.literal(1))
        .where(
            e.c.playbook.in_(autonomous),
            e.c.source == "autonomous",
            e.c.status == "success",
            e.c.admitted_at >= f.c.created_at,
            e.c.admitted_at < f.c.created_at + PREVENTION_SECONDS,
        )
        .exists()
    )
    resource = unindexed(f.c.resource)  # a pass in table order, not a lookup per forecast
    return (
        sa.select(resource, sa.func.count(), sa.func.sum(sa.case((followed, 1), else_=0)))
        .where(window.contains(f.c.created_at), f.c.severity == "critical")
        .group_by(resource)
    )


def _float(value: Any) -> float | None:
    return float(value) if value is not None else None
