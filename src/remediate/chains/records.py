"""A chain run's saved state: `chain_runs` and `chain_steps`, written as the run progresses.

Every step row is written before the step starts and again when it ends, so a run
killed at any moment (SIGKILL, a reboot) leaves rows that say how far it got. A run
whose owner (`host:pid`) is dead on this host, or whose lease expired, is swept to
`interrupted`; `remediate chain resume RUN_ID` claims it back with a conditional
UPDATE and continues at the first unfinished step.

Step statuses: pending · running · success · failure · timeout · skipped (condition
false) · blocked / escalated (refused by the gate) · not_run (the chain stopped
first) · rolled_back · interrupted. Run statuses: running · success · failure ·
aborted · timeout · interrupted.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, ValidationError

from remediate.config.models import Chain
from remediate.errors import RefusedError, StoreError
from remediate.store import Store
from remediate.store import tables as t
from remediate.store.store import holder_is_dead

__all__ = [
    "FINISHED_STEPS",
    "RunRow",
    "RunSpec",
    "StepDetail",
    "StepRow",
    "claim_interrupted",
    "finish_run",
    "insert_run",
    "load_run",
    "recent_runs",
    "sweep",
    "update_step",
]

FINISHED_STEPS = frozenset(
    {"success", "failure", "timeout", "skipped", "blocked", "escalated", "not_run", "rolled_back"}
)
UNFINISHED_STEPS = frozenset({"pending", "running", "interrupted"})


class RunSpec(BaseModel):
    """What a run was started with (stored in chain_runs.spec): resume uses this, not the
    config as it is now, so an edited chain never changes a run half-way through."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chain: Chain
    confirmed: bool = False


class StepDetail(BaseModel):
    """Stored as JSON in chain_steps.detail: why the step ended as it did."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    summary: str = ""
    condition: str | None = None
    condition_observed: str | None = None
    decision_id: int | None = None
    gate_check: str | None = None
    timeout_seconds: float | None = None
    # A failure that on_failure: skip told the chain to ignore (it does not fail the run).
    tolerated: bool = False
    rollback: str | None = None
    undone: bool | None = None  # None: not asked to roll back


@dataclass(frozen=True)
class StepRow:
    position: int
    playbook: str
    status: str
    execution_id: int | None
    started_at: float | None
    finished_at: float | None
    detail: StepDetail

    @property
    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return max(self.finished_at - self.started_at, 0.0)


@dataclass(frozen=True)
class RunRow:
    id: int
    chain: str
    source: str
    status: str
    started_at: float
    finished_at: float | None
    owner: str | None
    lease_expires_at: float | None
    spec: RunSpec
    steps: tuple[StepRow, ...]

    @property
    def duration(self) -> float | None:
        return None if self.finished_at is None else max(self.finished_at - self.started_at, 0)


def _detail(text: str | None) -> StepDetail:
    if not text:
        return StepDetail()
    try:
        return StepDetail.model_validate_json(text)
    except ValidationError:
        return StepDetail(summary=text)  # written by hand or by an older version


def insert_run(
    store: Store,
    *,
    spec: RunSpec,
    source: str,
    owner: str,
    now: float,
    lease_expires_at: float,
) -> int:
    """Create the run and one pending row per step; refuse while this chain runs elsewhere."""
    r, s = t.chain_runs, t.chain_steps
    with store.gate_transaction() as view:
        connection = view.connection
        running = connection.execute(
            sa.select(r.c.id, r.c.owner).where(
                r.c.chain == spec.chain.name, r.c.status == "running"
            )
        ).first()
        if running is not None:
            raise RefusedError(
                f"chain {spec.chain.name} is already running as run {running.id} "
                f"({running.owner}); see `remediate chain status {running.id}`"
            )
        run_id = int(
            connection.execute(
                r.insert().values(
                    chain=spec.chain.name,
                    source=source,
                    started_at=now,
                    status="running",
                    spec=spec.model_dump(mode="json"),
                    owner=owner,
                    lease_expires_at=lease_expires_at,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
        )
        connection.execute(
            s.insert(),
            [
                {"run_id": run_id, "position": position, "playbook": step.name, "status": "pending"}
                for position, step in enumerate(spec.chain.playbooks)
            ],
        )
    return run_id


def update_step(
    store: Store,
    run_id: int,
    position: int,
    *,
    status: str,
    detail: StepDetail | None = None,
    **values: Any,
) -> None:
    s = t.chain_steps
    if detail is not None:
        values["detail"] = detail.model_dump_json(exclude_defaults=True)
    with store.gate_transaction() as view:
        view.connection.execute(
            s.update()
            .where(s.c.run_id == run_id, s.c.position == position)
            .values(status=status, **values)
        )


def extend_lease(store: Store, run_id: int, *, lease_expires_at: float) -> None:
    r = t.chain_runs
    with store.gate_transaction() as view:
        view.connection.execute(
            r.update().where(r.c.id == run_id).values(lease_expires_at=lease_expires_at)
        )


def finish_run(store: Store, run_id: int, *, status: str, now: float) -> None:
    r, s = t.chain_runs, t.chain_steps
    with store.gate_transaction() as view:
        view.connection.execute(
            s.update()
            .where(s.c.run_id == run_id, s.c.status.in_(("pending", "interrupted")))
            .values(status="not_run")
        )
        view.connection.execute(
            r.update()
            .where(r.c.id == run_id)
            .values(status=status, finished_at=now, lease_expires_at=None)
        )


def claim_interrupted(store: Store, run_id: int, *, owner: str, lease_expires_at: float) -> None:
    """Take an interrupted run back; a conditional UPDATE, so only one resume wins."""
    r = t.chain_runs
    with store.gate_transaction() as view:
        claimed = view.connection.execute(
            r.update()
            .where(r.c.id == run_id, r.c.status == "interrupted")
            .values(status="running", owner=owner, lease_expires_at=lease_expires_at)
        ).rowcount
    if claimed != 1:
        run = load_run(store, run_id)
        if run.status == "running":
            raise RefusedError(
                f"run {run_id} is still running ({run.owner}); only an interrupted run resumes"
            )
        raise RefusedError(
            f"run {run_id} ended as {run.status}; only an interrupted run resumes "
            f"(start a new one: remediate chain run {run.chain})"
        )


def sweep(store: Store, *, now: float) -> list[int]:
    """Mark running runs whose owner died on this host, or whose lease expired, interrupted."""
    r, s = t.chain_runs, t.chain_steps
    host = socket.gethostname()
    with store.gate_transaction() as view:
        connection = view.connection
        rows = connection.execute(
            sa.select(r.c.id, r.c.owner, r.c.lease_expires_at).where(r.c.status == "running")
        ).all()
        stale = [
            row.id
            for row in rows
            if (row.lease_expires_at is not None and row.lease_expires_at <= now)
            or holder_is_dead(row.owner, host)
        ]
        if stale:
            connection.execute(
                r.update()
                .where(r.c.id.in_(stale), r.c.status == "running")
                .values(status="interrupted", lease_expires_at=None)
            )
            connection.execute(
                s.update()
                .where(s.c.run_id.in_(stale), s.c.status == "running")
                .values(status="interrupted")
            )
    return stale


def load_run(store: Store, run_id: int) -> RunRow:
    from remediate.errors import UsageError

    missing = UsageError(f"no chain run {run_id} (see `remediate chain status`)")
    if not 1 <= run_id <= store.largest_id:  # no such row can exist
        raise missing
    r, s = t.chain_runs, t.chain_steps
    with store.reading() as connection:
        row = connection.execute(sa.select(r).where(r.c.id == run_id)).mappings().first()
        if row is None:
            raise missing
        steps = connection.execute(
            sa.select(s).where(s.c.run_id == run_id).order_by(s.c.position)
        ).mappings()
        step_rows = tuple(
            StepRow(
                position=step["position"],
                playbook=step["playbook"],
                status=step["status"],
                execution_id=step["execution_id"],
                started_at=step["started_at"],
                finished_at=step["finished_at"],
                detail=_detail(step["detail"]),
            )
            for step in steps
        )
    try:
        spec = RunSpec.model_validate(row["spec"])
    except ValidationError as error:
        raise StoreError(
            f"chain run {run_id} has a spec this version cannot read: {error}"
        ) from None
    return RunRow(
        id=row["id"],
        chain=row["chain"],
        source=row["source"],
        status=row["status"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        owner=row["owner"],
        lease_expires_at=row["lease_expires_at"],
        spec=spec,
        steps=step_rows,
    )


def recent_runs(store: Store, *, limit: int = 20, chain: str | None = None) -> list[dict[str, Any]]:
    """Newest first, with how many steps ended in each status."""
    r, s = t.chain_runs, t.chain_steps
    query = (
        sa.select(
            r.c.id,
            r.c.chain,
            r.c.source,
            r.c.status,
            r.c.started_at,
            r.c.finished_at,
            r.c.owner,
        )
        .order_by(r.c.id.desc())
        .limit(limit)
    )
    if chain is not None:
        query = query.where(r.c.chain == chain)
    with store.reading() as connection:
        runs = [dict(row) for row in connection.execute(query).mappings()]
        ids = [run["id"] for run in runs]
        counts: dict[int, dict[str, int]] = {}
        if ids:
            for run_id, status, count in connection.execute(
                sa.select(s.c.run_id, s.c.status, sa.func.count())
                .where(s.c.run_id.in_(ids))
                .group_by(s.c.run_id, s.c.status)
            ):
                counts.setdefault(run_id, {})[status] = count
    for run in runs:
        run["steps"] = counts.get(run["id"], {})
        finished = run["finished_at"]
        run["duration_seconds"] = None if finished is None else finished - run["started_at"]
    return runs


def latest_status(store: Store, chains: Sequence[str]) -> dict[str, tuple[str, float]]:
    """Each chain's latest run: (status, started_at)."""
    r = t.chain_runs
    if not chains:
        return {}
    newest = (
        sa.select(sa.func.max(r.c.id).label("id")).where(r.c.chain.in_(chains)).group_by(r.c.chain)
    ).subquery()
    with store.reading() as connection:
        rows = connection.execute(
            sa.select(r.c.chain, r.c.status, r.c.started_at).where(
                r.c.id.in_(sa.select(newest.c.id))
            )
        )
        return {row.chain: (row.status, row.started_at) for row in rows}
