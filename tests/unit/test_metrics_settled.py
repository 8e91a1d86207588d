"""/metrics over a long history: a collector keeps what it counted of rows that can no
longer change and reads only the newer rows; its exposition always equals a recount."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from remediate.analytics.synthetic import fill
from remediate.clock import ManualClock
from remediate.config.models import Settings
from remediate.metrics import exposition, registry_for
from remediate.store import Store
from remediate.store import tables as t

NOW = 1_767_225_600.0  # 2026-01-01, after the filled month


def recount(store: Store) -> bytes:
    return exposition(registry_for(store, Settings(), ManualClock(NOW)))


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample by name and labels (float sums may differ in the last digit: the
    kept and the new parts are added in another order than a recount adds them)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }


def test_kept_counts_plus_new_rows_equal_a_recount(store: Store) -> None:
    fill(store, "2025-12", executions=400, seed=1)
    e = t.executions
    with store.reading() as connection:
        ids = connection.execute(sa.select(e.c.id).order_by(e.c.id)).scalars().all()
    in_flight = ids[150:153]  # executions still queued or running in the middle of the history
    with store.gate_transaction() as view:
        view.connection.execute(
            e.update()
            .where(e.c.id.in_(in_flight))
            .values(status="running", finished_at=None, duration_seconds=None)
        )
    kept = registry_for(store, Settings(), ManualClock(NOW))
    assert samples(exposition(kept)) == samples(recount(store))

    # They finish (one as a success with a reclaimed-bytes impact), and more history comes.
    for n, execution_id in enumerate(in_flight):
        assert store.finish(
            execution_id,
            status="success" if n == 0 else "failure",
            finished_at=NOW - 60,
            values={},
            impacts=[{"kind": "bytes_reclaimed", "subject": "/", "value": 123.0, "at": NOW - 60}]
            if n == 0
            else [],
        )
    fill(store, "2025-12", executions=200, seed=2)
    second = exposition(kept)
    assert samples(second) == pytest.approx(samples(recount(store)), rel=1e-12)
    assert b'remediation_playbook_executions_total{playbook="disk-cleanup",status="success"}' in (
        second
    )
    assert exposition(kept) == second  # nothing new: the same


def test_rows_counted_once_are_not_read_again(store: Store) -> None:
    """The product never changes a finished execution; if one is changed behind its back,
    a kept collector still shows what it counted (the proof it did not read it again),
    while a new collector recounts."""
    fill(store, "2025-12", executions=120, seed=3)
    kept = registry_for(store, Settings(), ManualClock(NOW))
    before = exposition(kept)
    e = t.executions
    with store.gate_transaction() as view:
        first = view.connection.execute(sa.select(sa.func.min(e.c.id))).scalar()
        view.connection.execute(e.update().where(e.c.id == first).values(playbook="renamed"))
    assert exposition(kept) == before
    assert b'playbook="renamed"' in recount(store)


def test_a_store_emptied_behind_its_back_is_counted_again(store: Store) -> None:
    fill(store, "2025-12", executions=80, seed=4)
    kept = registry_for(store, Settings(), ManualClock(NOW))
    exposition(kept)
    with store.gate_transaction() as view:
        for table in (t.impacts, t.approvals, t.executions):
            view.connection.execute(table.delete())
    fill(store, "2025-12", executions=30, seed=5)
    assert samples(exposition(kept)) == pytest.approx(samples(recount(store)), rel=1e-12)
