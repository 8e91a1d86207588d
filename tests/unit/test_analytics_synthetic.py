"""The synthetic month: exact size, deterministic, inside its month, and safe to add to."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from remediate.analytics.synthetic import fill
from remediate.analytics.window import Window
from remediate.clock import ManualClock
from remediate.pipeline.pipeline import Pipeline
from remediate.pipeline.request import Request
from remediate.playbooks.registry import Registry
from remediate.store import Store
from remediate.store import tables as t
from tests.analytics_history import load
from tests.helpers import settings_for


def test_it_writes_exactly_the_executions_asked_for_inside_the_month(store: Store) -> None:
    filled = fill(store, "2025-02", executions=250, seed=1)
    history = load(store)
    window = Window.month("2025-02")
    assert filled.rows["executions"] == len(history.executions) == 250
    assert filled.rows["requests"] == len(history.requests)
    for row in history.executions:
        assert window.start <= row["admitted_at"] < row["finished_at"] < window.end
    assert any(row["attempt"] > 1 for row in history.executions)  # retries are part of it
    statuses = {row["status"] for row in history.executions}
    assert {"success", "failure"} <= statuses
    assert {row["action"] for row in history.decisions} >= {
        "execute",
        "block",
        "escalate",
        "record",
    }


def test_the_same_seed_gives_the_same_history(tmp_path: Path) -> None:
    histories = []
    for name in ("one", "two"):
        store = Store.open(f"sqlite:///{tmp_path / name / 'remediate.db'}")
        fill(store, "2025-12", executions=120, seed=42)
        histories.append(load(store))
        store.close()
    assert histories[0] == histories[1]


def test_a_second_fill_appends_after_the_first(store: Store) -> None:
    fill(store, "2025-11", executions=50, seed=1)
    fill(store, "2025-12", executions=50, seed=2)
    with store.reading() as connection:
        count = connection.execute(sa.select(sa.func.count()).select_from(t.executions)).scalar()
    assert count == 100


def test_the_pipeline_records_normally_after_a_fill(
    store: Store, store_url: str, tmp_path: Path, clock: ManualClock
) -> None:
    # On PostgreSQL explicit ids do not move the id sequences: fill must move them.
    fill(store, "2025-12", executions=40, seed=3)
    settings = settings_for(
        tmp_path,
        store_url,
        playbooks={"commands": [{"name": "noop", "steps": [{"name": "true", "argv": ["true"]}]}]},
    )
    clock.set("2026-03-01T00:00:00Z")  # past the month, so no rate limit counts its runs
    pipeline = Pipeline(settings, store, Registry.from_settings(settings), clock=clock)
    decision, report = pipeline.run(Request("noop"))
    assert report is not None, decision.reason
    assert report.status == "success"
    assert report.execution_id == 41
