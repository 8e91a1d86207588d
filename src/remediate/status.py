"""`remediate status`: what an operator wants at a glance, read from the store."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from remediate.runtime import Runtime
from remediate.store import GateView
from remediate.store import tables as t


def collect_status(runtime: Runtime, *, sweep: bool = True) -> dict[str, Any]:
    """`sweep` first marks dead executions interrupted (a write; /health skips it)."""
    from remediate.pipeline.checks.circuit_breaker import state

    now = runtime.clock.now()
    if sweep:
        runtime.pipeline.recover()
    e, a = t.executions, t.approvals
    with runtime.store.reading() as connection:
        view = GateView(connection)
        last = connection.execute(
            sa.select(e.c.playbook, sa.func.max(e.c.id)).group_by(e.c.playbook)
        ).all()
        last_rows = {
            row.playbook: row
            for row in connection.execute(
                sa.select(e.c.playbook, e.c.status, e.c.admitted_at).where(
                    e.c.id.in_([execution_id for _, execution_id in last])
                )
            )
        }
        playbooks = sorted(set(runtime.registry.names()) | set(last_rows))
        rows = []
        for name in playbooks:
            breaker = state(view, name, runtime.settings.safety.circuit_breaker, now)
            latest = last_rows.get(name)
            rows.append(
                {
                    "playbook": name,
                    "breaker": breaker.state,
                    "consecutive_failures": breaker.consecutive_failures,
                    "breaker_reopens_at": breaker.reopens_at,
                    "last_run": latest.admitted_at if latest else None,
                    "last_status": latest.status if latest else None,
                }
            )
        running = [
            dict(row)
            for row in connection.execute(
                sa.select(e.c.id, e.c.playbook, e.c.target, e.c.started_at, e.c.lease_owner).where(
                    e.c.status == "running"
                )
            ).mappings()
        ]
        queued = connection.execute(
            sa.select(sa.func.count()).select_from(e).where(e.c.status == "queued")
        ).scalar()
        pending = connection.execute(
            sa.select(sa.func.count())
            .select_from(a)
            .where(a.c.status == "pending", a.c.expires_at > now)
        ).scalar()
        paused = view.flag("paused")
    return {
        "paused": paused or False,
        "store": runtime.settings.state.resolved_url().split("@")[-1],
        "queued": int(queued or 0),
        "running": running,
        "pending_approvals": int(pending or 0),
        "playbooks": rows,
    }
