"""Escalations waiting for an operator: list, approve, reject, expire.

An approved request passes through the gate again: approval lifts only the
confidence and confirmation check, so pause, limits and the breaker still hold.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from remediate.errors import RefusedError, UsageError
from remediate.pipeline.pipeline import Pipeline
from remediate.pipeline.request import Alert, Decision, Request
from remediate.store import Store
from remediate.store import tables as t


def expire(store: Store, now: float) -> int:
    a = t.approvals
    with store.gate_transaction() as view:
        return int(
            view.connection.execute(
                a.update()
                .where(a.c.status == "pending", a.c.expires_at <= now)
                .values(status="expired", decided_at=now)
            ).rowcount
        )


def listing(store: Store, now: float, *, status: str | None = "pending") -> list[dict[str, Any]]:
    expire(store, now)
    a, r, d = t.approvals, t.requests, t.decisions
    query = (
        sa.select(
            a.c.id,
            a.c.decision_id,
            a.c.created_at,
            a.c.expires_at,
            a.c.status,
            a.c.decided_at,
            a.c.decided_by,
            a.c.outcome_decision_id,
            r.c.playbook,
            r.c.parameters,
            r.c.alertname,
            r.c.source,
            r.c.confidence,
            d.c.reason,
        )
        .select_from(a.join(r, r.c.id == a.c.request_id).join(d, d.c.id == a.c.decision_id))
        .order_by(a.c.id)
    )
    if status is not None:
        query = query.where(a.c.status == status)
    with store.reading() as connection:
        return [dict(row) for row in connection.execute(query).mappings()]


def _claim(store: Store, approval_id: int, *, status: str, now: float, by: str) -> dict[str, Any]:
    """Move a pending approval to approved/rejected exactly once."""
    if not 1 <= approval_id <= store.largest_id:  # no such row can exist
        raise UsageError(f"no approval {approval_id} (see `remediate pending`)")
    a, r = t.approvals, t.requests
    with store.gate_transaction() as view:
        row = (
            view.connection.execute(
                sa.select(
                    a,
                    r.c.playbook,
                    r.c.parameters,
                    r.c.source,
                    r.c.alertname,
                    r.c.labels,
                    r.c.annotations,
                    r.c.fingerprint,
                    r.c.alert_starts_at,
                    r.c.confidence,
                )
                .select_from(a.join(r, r.c.id == a.c.request_id))
                .where(a.c.id == approval_id)
            )
            .mappings()
            .first()
        )
        if row is None:
            raise UsageError(f"no approval {approval_id} (see `remediate pending`)")
        if row["status"] == "pending" and row["expires_at"] <= now:
            view.connection.execute(
                a.update().where(a.c.id == approval_id).values(status="expired", decided_at=now)
            )
            raise RefusedError(f"approval {approval_id} expired; the alert must fire again")
        if row["status"] != "pending":
            raise RefusedError(f"approval {approval_id} is already {row['status']}")
        view.connection.execute(
            a.update()
            .where(a.c.id == approval_id, a.c.status == "pending")
            .values(status=status, decided_at=now, decided_by=by)
        )
        return dict(row)


def approve(pipeline: Pipeline, approval_id: int, *, by: str) -> Decision:
    row = _claim(pipeline.store, approval_id, status="approved", now=pipeline.clock.now(), by=by)
    alert = None
    if row["alertname"]:
        alert = Alert(
            name=row["alertname"],
            labels=row["labels"] or {},
            annotations=row["annotations"] or {},
            fingerprint=row["fingerprint"],
            starts_at=row["alert_starts_at"],
        )
    request = Request(
        playbook=row["playbook"],
        parameters=row["parameters"] or {},
        source=row["source"],
        alert=alert,
        confidence=row["confidence"],
        requires_confirmation=True,
        confirmed=True,
        approved=True,
    )
    decision = pipeline.decide(request)
    with pipeline.store.gate_transaction() as view:
        view.connection.execute(
            t.approvals.update()
            .where(t.approvals.c.id == approval_id)
            .values(outcome_decision_id=decision.id)
        )
    return decision


def reject(store: Store, approval_id: int, *, by: str, now: float) -> None:
    _claim(store, approval_id, status="rejected", now=now, by=by)
