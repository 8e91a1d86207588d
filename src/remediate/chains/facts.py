"""What a chain's conditions can observe: memory, swap, disks, the latest forecast, recent
failures and the earlier steps of this run. Each source is injected, so tests can read a
real temporary mount and a real store while production reads the host.

    facts = SystemFacts(store=store, clock=clock, steps={"disk-cleanup": "success"})
    Condition.parse("memory_available < 20%").evaluate(facts)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa

from remediate.chains.conditions import Fact, Quantity
from remediate.clock import Clock
from remediate.store import Store
from remediate.store import tables as t

__all__ = ["FAILED_STEP", "SystemFacts"]

FailedStatuses = frozenset[str]
# A step that did not succeed: it failed, timed out, or the gate refused it.
FAILED_STEP: FailedStatuses = frozenset({"failure", "timeout", "blocked", "escalated"})
HOUR = 3600.0


class SystemFacts:
    """Reads each fact when asked; a fact that cannot be read is unknown (None)."""

    def __init__(
        self,
        *,
        store: Store | None,
        clock: Clock,
        steps: Mapping[str, str] | None = None,
        memory: Callable[[], Any] | None = None,
        swap: Callable[[], Any] | None = None,
        statvfs: Callable[[str], os.statvfs_result] = os.statvfs,
    ) -> None:
        import psutil

        self.store = store
        self.clock = clock
        self.steps = dict(steps or {})  # playbook -> status of its latest step in this run
        self.memory = memory or psutil.virtual_memory
        self.swap = swap or psutil.swap_memory
        self.statvfs = statvfs

    def value(self, fact: Fact) -> Quantity | float | str | bool | None:
        if fact.step is not None:
            return self._step(fact.step, fact.name.removeprefix("steps."))
        name = fact.name
        if name.startswith("memory_"):
            memory = self.memory()
            available = float(memory.available)
            total = float(memory.total)
            return Quantity(available if name == "memory_available" else total - available, total)
        if name.startswith("swap_"):
            swap = self.swap()
            if not swap.total:
                return None  # no swap at all: "swap_used > 50%" means nothing
            return Quantity(float(swap.free if name == "swap_free" else swap.used), swap.total)
        if name.startswith("disk_"):
            return self._disk(name, fact.label("mount"))
        if name == "recent_failures":
            return self._recent_failures()
        if name.startswith("prediction."):
            return self._forecast(name.removeprefix("prediction."))
        return None

    def _step(self, step: str, attribute: str) -> str | bool | None:
        status = self.steps.get(step)
        if status is None:
            return None
        if attribute == "status":
            return status
        if attribute == "success":
            return status == "success"
        if attribute == "skipped":
            return status == "skipped"
        return status in FAILED_STEP

    def _disk(self, name: str, mount: str) -> Quantity | None:
        try:
            stat = self.statvfs(mount)
        except OSError:
            return None
        total = float(stat.f_blocks * stat.f_frsize)
        if name == "disk_free":
            # f_bavail, not f_bfree: what a non-root process can still write, as df shows it.
            return Quantity(float(stat.f_bavail * stat.f_frsize), total)
        return Quantity(float((stat.f_blocks - stat.f_bfree) * stat.f_frsize), total)

    def _recent_failures(self) -> float | None:
        if self.store is None:
            return None
        e = t.executions
        since = self.clock.now() - HOUR
        with self.store.reading() as connection:
            count = connection.execute(
                sa.select(sa.func.count())
                .select_from(e)
                .where(e.c.status.in_(("failure", "timeout")), e.c.finished_at >= since)
            ).scalar()
        return float(count or 0)

    def _forecast(self, attribute: str) -> str | float | None:
        if self.store is None:
            return None
        f = t.forecasts
        with self.store.reading() as connection:
            row = connection.execute(
                sa.select(f.c.severity, f.c.resource, f.c.confidence)
                .order_by(f.c.created_at.desc(), f.c.id.desc())
                .limit(1)
            ).first()
        if row is None:
            return None  # no forecast yet: comparisons on it are false
        value: str | float = getattr(row, attribute)
        return float(value) if attribute == "confidence" else str(value)
