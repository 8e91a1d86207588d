"""The seed's three safety timelines (DESIGN §4), verbatim, on an injected clock.

These run the real gate against the real store (SQLite and PostgreSQL) with
command playbooks that run `true` or `false`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from remediate.clock import ManualClock
from remediate.pipeline.pipeline import Pipeline
from remediate.pipeline.request import Alert, Request
from remediate.playbooks.registry import Registry
from remediate.store import Store
from tests.helpers import settings_for


def command(name: str, argv: list[str]) -> dict[str, object]:
    return {"name": name, "risk": "low", "steps": [{"name": "run", "argv": argv}]}


@pytest.fixture
def pipeline(tmp_path: Path, store: Store, store_url: str, clock: ManualClock) -> Pipeline:
    settings = settings_for(
        tmp_path,
        store_url,
        playbooks={"commands": [command("cleanup", ["true"]), command("broken", ["false"])]},
    )
    return Pipeline(settings, store, Registry.from_settings(settings), clock=clock)


def disk_alert() -> Request:
    return Request(
        "cleanup",
        source="webhook",
        confidence=95,
        alert=Alert("SystemDiskSpaceCritical", {"instance": "localhost", "mountpoint": "/"}),
    )


def replay(pipeline: Pipeline, clock: ManualClock, steps: list[tuple[str, Request]]) -> list[str]:
    """Run each request at its time; return 'exec' or 'blocked (<check>)' for each."""
    seen = []
    for at, request in steps:
        clock.set(f"2025-12-24T{at}Z")
        decision, report = pipeline.run(request)
        if decision.action == "execute":
            assert report is not None
            seen.append("exec" if report.status == "success" else report.status)
        else:
            seen.append(f"{decision.action} ({decision.check})")
    return seen


def test_the_same_alert_within_five_minutes_executes_once(
    pipeline: Pipeline, clock: ManualClock
) -> None:
    # Only idempotency is under test here: no cooldown in the way.
    pipeline.settings = pipeline.settings.model_copy(
        update={
            "safety": pipeline.settings.safety.model_copy(
                update={
                    "rate_limits": pipeline.settings.safety.rate_limits.model_copy(
                        update={"cooldown_minutes": 0}
                    )
                }
            )
        }
    )
    seen = replay(
        pipeline,
        clock,
        [("10:00:00", disk_alert()), ("10:02:30", disk_alert()), ("10:06:00", disk_alert())],
    )
    assert seen == ["exec", "block (idempotency)", "exec"]


def test_rate_limits_follow_the_seed_timeline(pipeline: Pipeline, clock: ManualClock) -> None:
    seen = replay(
        pipeline,
        clock,
        [
            ("10:00:00", disk_alert()),
            ("10:05:00", disk_alert()),
            ("10:20:00", disk_alert()),
            ("10:40:00", disk_alert()),
            ("11:00:00", disk_alert()),
        ],
    )
    assert seen == ["exec", "block (rate_limit)", "exec", "exec", "block (rate_limit)"]
    blocked = pipeline.store.history(limit=5)
    assert "cooldown" in blocked[3]["reason"]
    assert "per-alert limit" in blocked[0]["reason"]


def test_the_circuit_breaker_follows_the_seed_timeline(
    pipeline: Pipeline, clock: ManualClock
) -> None:
    broken = Request("broken", source="schedule")
    seen = replay(
        pipeline,
        clock,
        [
            ("10:00:00", broken),
            ("10:15:00", broken),
            ("10:30:00", broken),
            ("10:45:00", broken),
            ("11:00:00", broken),
        ],
    )
    assert seen == ["failure", "failure", "failure", "block (circuit_breaker)", "failure"]
    # The trial failed, so the breaker opened again from 11:00.
    clock.set("2025-12-24T11:20:00Z")
    decision, _ = pipeline.run(broken)
    assert decision.check == "circuit_breaker"
    assert "circuit open" in decision.reason
