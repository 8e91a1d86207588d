"""The observe-orient-decide-act loop and predictive-maintenance, through the real pipeline,
gate and store, with the real disk-cleanup deleting real files under a temp root.

Forecasts are "planted" as a week of stored samples for the temp directory's
resource (`disk:<tmp>`); the loop samples the machine too, but those are other
resources. Container states come from recorded `podman ps` output.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from remediate.autonomous import samples
from remediate.autonomous.observe import Loop, recent
from remediate.autonomous.samples import Sample
from remediate.clock import ManualClock
from remediate.config.models import Settings
from remediate.pipeline.pipeline import Pipeline
from remediate.pipeline.request import Request
from remediate.playbooks.registry import Registry
from remediate.store import Store
from remediate.store import tables as t
from remediate.system.process import Completed, run_process
from tests.helpers import settings_for

FIXTURES = Path(__file__).parent.parent / "fixtures" / "autonomous"
GIB = 1024**3
OLD = time.mktime((2025, 1, 1, 0, 0, 0, 0, 0, -1))


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    """A directory with three old log files (disk-cleanup's configured root)."""
    root = tmp_path / "data"
    (root / "logs").mkdir(parents=True)
    for number in range(3):
        path = root / "logs" / f"app-{number}.log"
        path.write_bytes(b"x" * 4096)
        os.utime(path, (OLD, OLD))
    return root


def make_settings(tmp_path: Path, store_url: str, data_root: Path, **extra: Any) -> Settings:
    sections: dict[str, Any] = {
        "playbooks": {
            "settings": {
                "disk-cleanup": {
                    "images": {"enabled": False},
                    "journal": {"enabled": False},
                    "paths": [{"root": str(data_root / "logs"), "pattern": "*.log"}],
                }
            }
        },
        "autonomous": {"containers": False, **extra.pop("autonomous", {})},
    }
    sections.update(extra)
    return settings_for(tmp_path, store_url, **sections)


def plant_week(
    store: Store, clock: ManualClock, resource: str, start: float, per_day: float
) -> None:
    """A week of hourly samples growing steadily: a confident forecast of that growth."""
    rows = [
        Sample(
            clock.now() - (167 - hour) * 3600,
            resource,
            (start + per_day * hour / 24) * GIB,
            100 * GIB,
        )
        for hour in range(168)
    ]
    samples.write(store, rows, retention_days=30, now=clock.now())


@pytest.fixture
def pipeline(
    tmp_path: Path, store_url: str, store: Store, clock: ManualClock, data_root: Path
) -> Pipeline:
    settings = make_settings(tmp_path, store_url, data_root)
    return Pipeline(
        settings, store, Registry.from_settings(settings), clock=clock, sleep=lambda _: None
    )


def test_observe_act_on_a_planted_critical_forecast_runs_disk_cleanup_once_then_the_gate_blocks(
    pipeline: Pipeline, store: Store, clock: ManualClock, data_root: Path
) -> None:
    resource = f"disk:{data_root}"
    plant_week(store, clock, resource, start=70, per_day=2)  # 83.9% now, ~98% in a week
    loop = Loop(pipeline.settings, store, clock=clock, pipeline=pipeline)

    first = loop.run(act=True)

    [acted] = [item for item in first.decisions if item.finding.resource == resource]
    assert (acted.finding.kind, acted.decision) == ("forecast.critical", "act")
    assert acted.gate is not None and acted.gate["action"] == "execute"
    assert acted.gate["status"] == "success"
    assert list((data_root / "logs").iterdir()) == []  # the real files are gone
    [row] = [r for r in store.history() if r["playbook"] == "disk-cleanup"]
    assert (row["source"], row["target"], row["parameters"]) == (
        "autonomous",
        str(data_root),
        {"mount": str(data_root)},
    )

    clock.advance(minutes=1)
    second = loop.run(act=True).as_dict()

    [again] = [item for item in second["decisions"] if item["resource"] == resource]
    assert again["decision"] == "act"
    assert (again["gate"]["action"], again["gate"]["check"]) == ("block", "rate_limit")
    assert "cooldown" in again["gate"]["reason"]
    executions = [r for r in store.history() if r["playbook"] == "disk-cleanup"]
    assert [r["action"] for r in executions] == ["block", "execute"]
    recorded = [o for o in recent(store) if o["resource"] == resource]
    assert [o["decision_id"] for o in recorded] == [executions[0]["id"], executions[1]["id"]]


def test_observe_without_act_records_the_decision_but_submits_nothing(
    pipeline: Pipeline, store: Store, clock: ManualClock, data_root: Path
) -> None:
    plant_week(store, clock, f"disk:{data_root}", start=70, per_day=2)
    cycle = Loop(pipeline.settings, store, clock=clock, pipeline=pipeline).run()
    [acted] = [item for item in cycle.decisions if item.decision == "act"]
    assert acted.gate == {"action": "none", "reason": "observe only: add --act to submit it"}
    assert store.history() == []
    assert len(list((data_root / "logs").iterdir())) == 3
    kinds = {row["kind"] for row in recent(store)}
    assert {"cycle", "forecast.critical"} <= kinds


def test_observe_dry_run_shows_the_gate_verdict_and_plan_and_records_nothing(
    pipeline: Pipeline, store: Store, clock: ManualClock, data_root: Path
) -> None:
    plant_week(store, clock, f"disk:{data_root}", start=70, per_day=2)
    with store.reading() as connection:
        before = connection.execute(t.samples.select()).all()
    cycle = Loop(pipeline.settings, store, clock=clock, pipeline=pipeline).run(
        act=True, dry_run=True
    )
    [acted] = [item for item in cycle.decisions if item.decision == "act"]
    assert acted.gate is not None and acted.gate["action"] == "execute" and acted.gate["dry_run"]
    assert any("app-0.log" in line for line in acted.gate["plan"])
    assert store.history() == [] and recent(store) == []
    with store.reading() as connection:
        assert connection.execute(t.samples.select()).all() == before
        assert connection.execute(t.forecasts.select()).all() == []
    assert len(list((data_root / "logs").iterdir())) == 3


def test_an_open_accuracy_breaker_pauses_predictive_actions(
    pipeline: Pipeline, store: Store, clock: ManualClock, data_root: Path
) -> None:
    plant_week(store, clock, f"disk:{data_root}", start=70, per_day=2)
    with samples.writing(store) as connection:  # twelve recent forecasts that were far off
        connection.execute(
            t.forecasts.insert(),
            [
                {
                    "created_at": clock.now() - 9 * 86400,
                    "resource": "disk:/srv",
                    "current": 50,
                    "trend_per_day": 1,
                    "horizon_at": clock.now() - 2 * 86400,
                    "predicted": 57,
                    "severity": "ok",
                    "confidence": 90,
                    "scored_at": clock.now() - 3600,
                    "actual": 80,
                    "score": 0.0,
                }
            ]
            * 12,
        )
    cycle = Loop(pipeline.settings, store, clock=clock, pipeline=pipeline).run(act=True)
    assert cycle.prediction.breaker.open
    [skipped] = [item for item in cycle.decisions if item.finding.kind == "forecast.critical"]
    assert skipped.decision == "skip" and skipped.reason.startswith("accuracy breaker open")
    assert store.history() == []


class Replay:
    """Replays recorded output for one argv (tests/fixtures/autonomous/README.md)."""

    def __init__(self, outputs: Mapping[tuple[str, ...], str]) -> None:
        self.outputs = outputs
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, argv: Sequence[str], *, timeout: float, **_: Any) -> Completed:
        self.calls.append(tuple(argv))
        if tuple(argv) in self.outputs:
            return Completed(tuple(argv), 0, self.outputs[tuple(argv)], "", 0.2)
        return run_process(argv, timeout=timeout)


def test_a_declared_container_that_is_not_running_is_a_finding(
    tmp_path: Path,
    store_url: str,
    store: Store,
    clock: ManualClock,
    data_root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}")
    settings = make_settings(
        tmp_path,
        store_url,
        data_root,
        services=[
            {"name": "web", "container": "rec-web-1"},
            {"name": "worker", "container": "rec-stopped-1"},
            {"name": "gone", "container": "rec-gone-1"},
        ],
        autonomous={
            "decisions": [
                {
                    "finding": "container.down",
                    "resource": "container:*",
                    "playbook": "service-restart",
                    "parameters": {"service": "{subject}"},
                    "risk": "medium",
                }
            ]
        },
    )
    replay = Replay(
        {("podman", "ps", "-a", "--format", "json"): (FIXTURES / "podman-ps.json").read_text()}
    )
    cycle = Loop(settings, store, clock=clock, runner=replay).run(act=True)
    states = {row["service"]: row["state"] for row in cycle.containers}
    assert states == {"web": "running", "worker": "created", "gone": "missing"}
    down = {
        item.finding.subject: item
        for item in cycle.decisions
        if item.finding.kind == "container.down"
    }
    assert set(down) == {"worker", "gone"}
    assert down["worker"].decision == "skip"
    assert "risk medium is above autonomous.max_risk low" in down["worker"].reason


def test_unparsable_podman_ps_output_is_a_problem_naming_the_command(
    tmp_path: Path,
    store_url: str,
    store: Store,
    clock: ManualClock,
    data_root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}")
    settings = make_settings(tmp_path, store_url, data_root, services=[{"name": "web"}])
    replay = Replay({("podman", "ps", "-a", "--format", "json"): "Error: not json at all"})
    cycle = Loop(settings, store, clock=clock, runner=replay).run()
    assert any("podman ps -a --format json" in problem for problem in cycle.as_dict()["problems"])


# --- predictive-maintenance -----------------------------------------------------------------


def test_predictive_maintenance_plans_without_changing_anything(
    pipeline: Pipeline, store: Store, clock: ManualClock, data_root: Path
) -> None:
    plant_week(store, clock, f"disk:{data_root}", start=70, per_day=2)
    preview = pipeline.preview(Request("predictive-maintenance", {"resource": "disk:*"}))
    lines = [action.description for action in preview.plan.actions]
    assert any(
        f"submit disk-cleanup -p mount={data_root} through the gate" in line for line in lines
    )
    assert preview.plan.data["forecasts"][0]["severity"] == "critical"
    with store.reading() as connection:
        assert connection.execute(t.forecasts.select()).all() == []
    assert store.history() == []


def test_predictive_maintenance_stores_forecasts_and_submits_the_preemptive_cleanup(
    pipeline: Pipeline, store: Store, clock: ManualClock, data_root: Path
) -> None:
    plant_week(store, clock, f"disk:{data_root}", start=70, per_day=2)
    _, report = pipeline.run(Request("predictive-maintenance", {"resource": f"disk:{data_root}"}))
    assert report is not None and report.status == "success", report
    assert report.result is not None
    [decided] = report.result.details["decisions"]
    assert decided["gate"]["action"] == "execute" and decided["gate"]["status"] == "success"
    assert list((data_root / "logs").iterdir()) == []
    sources = {(r["playbook"], r["source"]) for r in store.history()}
    assert sources == {("predictive-maintenance", "manual"), ("disk-cleanup", "autonomous")}
    with store.reading() as connection:
        stored = connection.execute(t.forecasts.select()).all()
    assert [row.resource for row in stored] == [f"disk:{data_root}"]
    assert stored[0].severity == "critical" and stored[0].confidence > 80


def test_predictive_maintenance_with_an_unreachable_store_fails_with_the_reason(
    tmp_path: Path, clock: ManualClock, sqlite_store: Store, data_root: Path
) -> None:
    settings = make_settings(tmp_path, "postgresql://remediate@127.0.0.1:9/nowhere", data_root)
    pipeline = Pipeline(settings, sqlite_store, Registry.from_settings(settings), clock=clock)
    _, report = pipeline.run(Request("predictive-maintenance"))
    assert report is not None and report.status == "failure"
    assert "the store failed" in report.summary and "127.0.0.1" in report.summary


def test_a_bad_resource_pattern_is_refused_before_anything_runs(pipeline: Pipeline) -> None:
    from remediate.errors import ParameterError

    with pytest.raises(ParameterError) as raised:
        pipeline.run(Request("predictive-maintenance", {"resource": "disk:/srv; rm -rf /"}))
    assert raised.value.parameter == "resource"
    assert pipeline.store.history() == []
