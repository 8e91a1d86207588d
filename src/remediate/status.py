"""`remediate status`: what an operator wants at a glance, read from the store."""

from __future__ import annotations

from typing import Any

from remediate.runtime import Runtime

# Plain SQL, the same on SQLite and PostgreSQL: /health runs this, and on SQLite it runs
# on the driver alone (SQLAlchemy is not imported for it).
_LATEST = (
    "SELECT e.playbook, e.status, e.admitted_at FROM executions e"
    " JOIN (SELECT MAX(id) AS id FROM executions GROUP BY playbook) latest"
    " ON e.id = latest.id"
)
_RUNNING = (
    "SELECT id, playbook, target, started_at, lease_owner FROM executions"
    " WHERE status = 'running' ORDER BY id"
)
_QUEUED = "SELECT count(*) FROM executions WHERE status = 'queued'"
_PENDING = "SELECT count(*) FROM approvals WHERE status = 'pending' AND expires_at > :now"


def collect_status(runtime: Runtime, *, sweep: bool = True) -> dict[str, Any]:
    """`sweep` first marks dead executions interrupted (a write; /health skips it)."""
    from remediate.pipeline.checks.circuit_breaker import state

    now = runtime.clock.now()
    if sweep:
        runtime.pipeline.recover()
    with runtime.store.reading_view() as view:
        last_rows = {row[0]: row for row in view.select(_LATEST)}
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
                    "last_run": latest[2] if latest else None,
                    "last_status": latest[1] if latest else None,
                }
            )
        running = [
            dict(zip(("id", "playbook", "target", "started_at", "lease_owner"), row, strict=True))
            for row in view.select(_RUNNING)
        ]
        queued = view.select(_QUEUED)[0][0]
        pending = view.select(_PENDING, now=now)[0][0]
        paused = view.flag("paused")
    return {
        "paused": paused or False,
        "store": runtime.settings.state.resolved_url().split("@")[-1],
        "queued": int(queued or 0),
        "running": running,
        "pending_approvals": int(pending or 0),
        "playbooks": rows,
    }
