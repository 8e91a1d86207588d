"""Chains in-process on real commands and a real store: strategies, conditions, gate, timeouts,
rollback, resume of an interrupted run, dry run, config errors and metrics."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.registry import Collector

from remediate.chains import records
from remediate.chains.executor import ChainRunner
from remediate.chains.metrics import collect
from remediate.chains.records import RunSpec
from remediate.clock import ManualClock
from remediate.config.loader import load_settings
from remediate.config.models import Settings
from remediate.errors import ConfigError, ConfigErrors, RefusedError, StoreError
from remediate.pipeline.pipeline import Pipeline
from remediate.pipeline.request import Request
from remediate.playbooks.registry import Registry
from remediate.store import Store
from tests.helpers import settings_for


def step(argv: list[str]) -> dict[str, Any]:
    return {"name": "run", "argv": argv}


def playbooks(markers: Path) -> list[dict[str, Any]]:
    """Real commands: touch a marker (rollback removes it), fail, hang, write pid and hang."""
    marker = {"file": {"type": "string", "pattern": "^[a-z]+$", "required": True}}
    return [
        {
            "name": "mark",
            "risk": "low",
            "parameters": marker,
            "target_parameter": "file",
            "steps": [step(["touch", f"{markers}/{{file}}"])],
            "rollback": [step(["rm", f"{markers}/{{file}}"])],
        },
        {"name": "ok", "risk": "low", "steps": [step(["true"])]},
        {
            "name": "stuck",
            "risk": "low",
            "steps": [step(["true"])],
            "rollback": [step(["sh", "-c", "echo still there >&2; exit 4"])],
        },
        {"name": "fail", "risk": "low", "steps": [step(["sh", "-c", "echo boom >&2; exit 3"])]},
        {
            "name": "hang",
            "risk": "low",
            "parameters": {"pidfile": {"type": "string", "required": True}},
            # The shell writes its pid, then becomes `sleep`: the timeout must kill that pid.
            "steps": [step(["sh", "-c", 'echo $$ > "$1"; exec sleep 300', "hang", "{pidfile}"])],
        },
        {"name": "careful", "requires_confirmation": True, "steps": [step(["true"])]},
    ]


def make_settings(
    tmp_path: Path, store_url: str, *chains: dict[str, Any], **extra: Any
) -> Settings:
    markers = tmp_path / "markers"
    markers.mkdir(exist_ok=True)
    safety = extra.pop(
        "safety", {"rate_limits": {"cooldown_minutes": 0, "max_executions_per_hour": 100}}
    )
    return settings_for(
        tmp_path,
        store_url,
        playbooks={"commands": playbooks(markers)},
        chains=list(chains),
        safety=safety,
        **extra,
    )


def runner_for(settings: Settings, store: Store, clock: ManualClock) -> ChainRunner:
    registry = Registry.from_settings(settings)
    pipeline = Pipeline(settings, store, registry, clock=clock, sleep=lambda _: None)
    return ChainRunner(settings, store, registry, pipeline, clock=clock)


def chain(strategy: str, *steps: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": "c", "strategy": strategy, "playbooks": list(steps), **extra}


MARK_A = {"name": "mark", "parameters": {"file": "a"}}
MARK_B = {"name": "mark", "parameters": {"file": "b"}}


def statuses(report: Any) -> list[str]:
    return [row.status for row in report.steps]


def test_a_chain_that_succeeds_records_the_run_and_every_step(
    tmp_path: Path, store: Store, store_url: str, clock: ManualClock
) -> None:
    settings = make_settings(tmp_path, store_url, chain("stop-on-failure", MARK_A, {"name": "ok"}))
    report = runner_for(settings, store, clock).run("c")
    assert (report.status, statuses(report)) == ("success", ["success", "success"])
    assert (tmp_path / "markers" / "a").exists()
    run = records.load_run(store, report.run.id)
    assert run.status == "success" and run.owner and run.finished_at is not None
    # Each step went through the gate as a chain request tied to this run.
    history = store.history()
    assert [row["source"] for row in history] == ["chain", "chain"]
    assert all(row.execution_id for row in run.steps)


@pytest.mark.parametrize(
    ("strategy", "expected", "run_status", "b_exists"),
    [
        ("continue-on-error", ["success", "failure", "success"], "failure", True),
        ("stop-on-failure", ["success", "failure", "not_run"], "failure", False),
        ("rollback-on-failure", ["rolled_back", "failure", "not_run"], "failure", False),
    ],
    ids=["continue-on-error", "stop-on-failure", "rollback-on-failure"],
)
def test_each_strategy_handles_a_failing_middle_step_as_named(
    tmp_path: Path,
    store: Store,
    store_url: str,
    clock: ManualClock,
    strategy: str,
    expected: list[str],
    run_status: str,
    b_exists: bool,
) -> None:
    settings = make_settings(tmp_path, store_url, chain(strategy, MARK_A, {"name": "fail"}, MARK_B))
    report = runner_for(settings, store, clock).run("c")
    assert (report.status, statuses(report)) == (run_status, expected)
    assert (tmp_path / "markers" / "b").exists() is b_exists
    # Rolled back means the marker the first step made is gone again.
    assert (tmp_path / "markers" / "a").exists() is (strategy != "rollback-on-failure")
    assert "exited 3" in report.steps[1].detail.summary


def test_rollback_reports_and_audits_the_steps_it_tried_to_undo(
    tmp_path: Path, store: Store, store_url: str, clock: ManualClock
) -> None:
    settings = make_settings(
        tmp_path,
        store_url,
        chain("rollback-on-failure", MARK_A, {"name": "stuck"}, {"name": "ok"}, {"name": "fail"}),
    )
    report = runner_for(settings, store, clock).run("c")
    assert statuses(report) == ["rolled_back", "success", "success", "failure"]
    assert report.steps[2].detail.undone is False
    assert report.steps[2].detail.rollback == "could not be undone: ok has no rollback"
    assert report.steps[1].detail.undone is False
    assert report.steps[1].detail.rollback.startswith("could not be undone: rollback failure")
    assert any("could not be undone" in hint for hint in report.advice)
    assert not (tmp_path / "markers" / "a").exists()
    # Each step the rollback tried to undo is a line in the audit log, newest first,
    # with the rollback's own status and output, and the step's ids and parameters.
    audit = settings.state.resolved_audit_log().read_text().splitlines()
    lines = [json.loads(line) for line in audit]
    ok, stuck, mark = [line for line in lines if line["action"] == "rollback"]
    run = f"chain c run {report.run.id}"
    assert (ok["playbook"], ok["status"], ok["success"], ok["duration_s"]) == (
        "ok",
        None,  # it has no rollback: nothing ran
        None,
        None,
    )
    assert ok["reason"] == f"{run}: could not be undone: ok has no rollback"
    assert (stuck["playbook"], stuck["status"], stuck["success"]) == ("stuck", "failure", False)
    assert "still there" in stuck["stderr"] and stuck["duration_s"] is not None
    assert (mark["playbook"], mark["status"], mark["success"]) == ("mark", "success", True)
    assert mark["reason"] == f"{run}: rolled back: 1 step(s) done"
    assert [line["execution_id"] for line in (ok, stuck, mark)] == [
        report.steps[position].execution_id for position in (2, 1, 0)
    ]
    assert mark["parameters"] == {"file": "a"}
    executed = {line["execution_id"]: line for line in lines if line["action"] == "execute"}
    for line in (ok, stuck, mark):  # the step's own decision, source and confidence
        step_line = executed[line["execution_id"]]
        assert [line[key] for key in ("id", "source", "confidence")] == [
            step_line[key] for key in ("id", "source", "confidence")
        ]


def test_a_step_whose_run_cannot_be_read_stays_done_and_the_rollback_goes_on(
    tmp_path: Path,
    store: Store,
    store_url: str,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = make_settings(
        tmp_path, store_url, chain("rollback-on-failure", MARK_A, MARK_B, {"name": "fail"})
    )
    runner = runner_for(settings, store, clock)
    read = store.execution_with_request
    reads_of_b: list[int] = []

    def flaky(execution_id: int) -> dict[str, Any]:
        row = read(execution_id)
        if (row["parameters"] or {}).get("file") == "b":
            reads_of_b.append(execution_id)
            if len(reads_of_b) > 1:  # the runner's read passes; the rollback's fails
                raise StoreError("disk I/O error")
        return row

    monkeypatch.setattr(store, "execution_with_request", flaky)
    report = runner.run("c")
    assert (report.status, statuses(report)) == ("failure", ["rolled_back", "success", "failure"])
    assert report.steps[1].detail.rollback == "could not be undone: reading its run: disk I/O error"
    assert (tmp_path / "markers" / "b").exists()  # not undone, and said so
    assert not (tmp_path / "markers" / "a").exists()  # the older step still was
    audit = settings.state.resolved_audit_log().read_text().splitlines()
    b, a = [line for line in map(json.loads, audit) if line["action"] == "rollback"]
    assert (b["status"], b["execution_id"], b["id"]) == (
        None,
        report.steps[1].execution_id,
        report.steps[1].detail.decision_id,
    )
    assert (a["status"], a["execution_id"]) == ("success", report.steps[0].execution_id)


@pytest.mark.parametrize(
    ("on_failure", "run_status", "last"),
    [
        ("skip", "success", "success"),
        ("continue", "failure", "success"),
        ("abort", "aborted", "not_run"),
    ],
)
def test_a_steps_on_failure_overrides_the_strategy(
    tmp_path: Path,
    store: Store,
    store_url: str,
    clock: ManualClock,
    on_failure: str,
    run_status: str,
    last: str,
) -> None:
    failing = {"name": "fail", "on_failure": on_failure}
    settings = make_settings(
        tmp_path, store_url, chain("continue-on-error", {"name": "ok"}, failing, MARK_B)
    )
    report = runner_for(settings, store, clock).run("c")
    assert report.status == run_status
    assert statuses(report) == ["success", "failure", last]
    assert report.steps[1].detail.tolerated is (on_failure == "skip")


def test_a_false_condition_skips_the_step_and_later_steps_can_read_it(
    tmp_path: Path, store: Store, store_url: str, clock: ManualClock
) -> None:
    settings = make_settings(
        tmp_path,
        store_url,
        chain(
            "stop-on-failure",
            {"name": "ok", "condition": "memory_available < 0.0001%"},
            {**MARK_A, "condition": "steps.ok.skipped"},
            {**MARK_B, "condition": 'prediction.severity == "critical"'},
        ),
    )
    report = runner_for(settings, store, clock).run("c")
    assert (report.status, statuses(report)) == ("success", ["skipped", "success", "skipped"])
    assert "memory_available = " in (report.steps[0].detail.condition_observed or "")
    assert report.steps[2].detail.condition_observed == "false (prediction.severity = unknown)"
    assert not (tmp_path / "markers" / "b").exists()


def test_a_step_the_gate_blocks_did_not_succeed_and_its_reason_is_kept(
    tmp_path: Path, store: Store, store_url: str, clock: ManualClock
) -> None:
    settings = make_settings(
        tmp_path,
        store_url,
        chain("stop-on-failure", MARK_A, MARK_B),
        safety={"rate_limits": {"cooldown_minutes": 15}},
    )
    report = runner_for(settings, store, clock).run("c")
    assert (report.status, statuses(report)) == ("failure", ["success", "blocked"])
    assert report.steps[1].detail.gate_check == "rate_limit"
    assert "cooldown" in report.steps[1].detail.summary


def test_a_chain_needing_confirmation_is_refused_without_it_and_confirms_its_steps(
    tmp_path: Path, store: Store, store_url: str, clock: ManualClock
) -> None:
    settings = make_settings(
        tmp_path,
        store_url,
        chain("stop-on-failure", {"name": "careful"}, requires_confirmation=True),
    )
    runner = runner_for(settings, store, clock)
    with pytest.raises(RefusedError) as raised:
        runner.run("c")
    assert "requires confirmation" in raised.value.message
    assert records.recent_runs(store) == []
    report = runner.run("c", confirmed=True)
    assert statuses(report) == ["success"]


def test_an_unconfirmed_step_that_needs_confirmation_escalates(
    tmp_path: Path, store: Store, store_url: str, clock: ManualClock
) -> None:
    settings = make_settings(tmp_path, store_url, chain("stop-on-failure", {"name": "careful"}))
    runner = runner_for(settings, store, clock)
    assert any(
        "requires confirmation" in w
        for w in runner.preflight(runner.chain("c"), confirmed=False).warnings
    )
    report = runner.run("c")
    assert statuses(report) == ["escalated"]
    assert any("remediate pending" in hint for hint in report.advice)


def test_preflight_refuses_unknown_playbooks_bad_parameters_pause_and_unstable_systems(
    tmp_path: Path, store: Store, store_url: str, clock: ManualClock
) -> None:
    settings = make_settings(
        tmp_path,
        store_url,
        chain("stop-on-failure", {"name": "mark", "parameters": {"file": "A; rm -rf /"}}),
        {"name": "d", "playbooks": [{"name": "no-such"}]},
        {"name": "e", "playbooks": [{"name": "ok"}], "preflight": ["recent_failures < 1"]},
        {"name": "f", "playbooks": [{"name": "ok"}]},
    )
    runner = runner_for(settings, store, clock)
    with pytest.raises(ConfigError) as bad_parameter:
        runner.run("c")
    with pytest.raises(ConfigError) as unknown:
        runner.run("d")
    assert "parameter 'file'" in bad_parameter.value.message
    assert "playbook 'no-such' is not installed" in unknown.value.message
    assert store.history() == [] and records.recent_runs(store) == []
    runner.pipeline.run(Request("fail"))  # one failure in the last hour: "unstable" for e
    with pytest.raises(RefusedError) as unstable:
        runner.run("e")
    assert "recent_failures < 1" in unstable.value.message
    store.set_flag("paused", {"reason": "maintenance"}, now=clock.now())
    with pytest.raises(RefusedError) as paused:
        runner.run("f")
    assert "paused: maintenance" in paused.value.message


def test_a_steps_timeout_kills_the_command_and_its_children(
    tmp_path: Path, store: Store, store_url: str, clock: ManualClock
) -> None:
    pidfile = tmp_path / "hang.pid"
    settings = make_settings(
        tmp_path,
        store_url,
        chain(
            "stop-on-failure",
            {"name": "hang", "parameters": {"pidfile": str(pidfile)}, "timeout": 0.5},
            {"name": "ok"},
        ),
    )
    report = runner_for(settings, store, clock).run("c")
    assert (report.status, statuses(report)) == ("failure", ["timeout", "not_run"])
    assert report.steps[0].detail.timeout_seconds == 0.5
    assert_gone(int(pidfile.read_text()))


def test_max_duration_bounds_the_whole_chain(
    tmp_path: Path, store: Store, store_url: str, clock: ManualClock
) -> None:
    pidfile = tmp_path / "hang.pid"
    settings = make_settings(
        tmp_path,
        store_url,
        chain(
            "continue-on-error",
            {"name": "ok"},
            {"name": "hang", "parameters": {"pidfile": str(pidfile)}, "timeout": 300},
            {"name": "ok"},
            max_duration=1,
        ),
    )
    runner = runner_for(settings, store, clock)
    assert any(
        "more than max_duration 1s" in w
        for w in runner.preflight(runner.chain("c"), confirmed=False).warnings
    )
    report = runner.run("c")
    # continue-on-error would go on after a failure, but the chain's time is up.
    assert (report.status, statuses(report)) == ("timeout", ["success", "timeout", "not_run"])
    assert (report.steps[1].detail.timeout_seconds or 300) <= 1
    assert_gone(int(pidfile.read_text()))


def assert_gone(pid: int) -> None:
    for _ in range(100):  # bounded: the runner already waited for the group to exit
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return
        time.sleep(0.05)
    pytest.fail(f"process {pid} survived its step's timeout")


def dead_owner() -> str:
    """host:pid of a process that has exited: the owner of a run whose process died."""
    import socket

    process = subprocess.Popen(["true"])
    process.wait()
    return f"{socket.gethostname()}:{process.pid}"


def test_a_run_whose_process_died_is_interrupted_and_resumes_at_its_first_unfinished_step(
    tmp_path: Path, store: Store, store_url: str, clock: ManualClock
) -> None:
    settings = make_settings(tmp_path, store_url, chain("stop-on-failure", MARK_A, MARK_B))
    runner = runner_for(settings, store, clock)
    # What a killed `chain run` leaves: step 1 done, step 2 running, its owner gone.
    spec = RunSpec(chain=runner.chain("c"))
    run_id = records.insert_run(
        store,
        spec=spec,
        source="manual",
        owner=dead_owner(),
        now=clock.now(),
        lease_expires_at=clock.now() + 900,
    )
    records.update_step(
        store, run_id, 0, status="success", started_at=clock.now(), finished_at=clock.now()
    )
    records.update_step(store, run_id, 1, status="running", started_at=clock.now())
    assert runner.report(run_id).status == "interrupted"
    assert any(f"chain resume {run_id}" in hint for hint in runner.report(run_id).advice)
    report = runner.resume(run_id)
    assert (report.status, statuses(report)) == ("success", ["success", "success"])
    # Step 1 was not repeated: only step 2 went through the gate.
    assert [row["parameters"] for row in store.history()] == [{"file": "b"}]
    assert not (tmp_path / "markers" / "a").exists() and (tmp_path / "markers" / "b").exists()
    with pytest.raises(RefusedError) as again:
        runner.resume(run_id)
    assert "ended as success" in again.value.message


def test_a_running_chain_cannot_start_twice_or_be_resumed_while_alive(
    tmp_path: Path, store: Store, store_url: str, clock: ManualClock
) -> None:
    settings = make_settings(tmp_path, store_url, chain("stop-on-failure", {"name": "ok"}))
    runner = runner_for(settings, store, clock)
    run_id = records.insert_run(
        store,
        spec=RunSpec(chain=runner.chain("c")),
        source="manual",
        owner=f"elsewhere:{os.getpid()}",
        now=clock.now(),
        lease_expires_at=clock.now() + 900,
    )
    with pytest.raises(RefusedError) as twice:
        runner.run("c")
    with pytest.raises(RefusedError) as alive:
        runner.resume(run_id)
    assert f"already running as run {run_id}" in twice.value.message
    assert "still running" in alive.value.message
    clock.advance(seconds=901)  # its lease expires: another host's dead run is noticed too
    assert runner.report(run_id).status == "interrupted"


def test_a_dry_run_shows_plans_and_conditions_and_records_nothing(
    tmp_path: Path, store: Store, store_url: str, clock: ManualClock
) -> None:
    settings = make_settings(
        tmp_path,
        store_url,
        chain(
            "stop-on-failure",
            {**MARK_A, "condition": "memory_available > 0%"},
            {"name": "ok", "condition": "steps.mark.success"},
        ),
    )
    runner = runner_for(settings, store, clock)
    dry = runner.dry_run(runner.chain("c"))
    first, second = dry.steps
    assert first.holds is True and first.gate == "execute"
    assert first.plan[0].argv == ("touch", f"{tmp_path / 'markers'}/a")
    assert second.holds is None and "decided when it runs" in (second.observed or "")
    assert store.history() == [] and records.recent_runs(store) == []
    assert not (tmp_path / "markers" / "a").exists()


def test_chain_metrics_come_from_the_store(
    tmp_path: Path, store: Store, store_url: str, clock: ManualClock
) -> None:
    settings = make_settings(
        tmp_path, store_url, chain("stop-on-failure", {"name": "ok"}, {"name": "fail"})
    )
    runner = runner_for(settings, store, clock)
    runner.run("c")
    clock.advance(minutes=1)
    runner.run("c")

    class Chains(Collector):
        def collect(self) -> Any:
            with store.sql_reading() as db:
                yield from collect(db, settings)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Chains())
    text = generate_latest(registry).decode()
    assert 'remediation_chain_executions_total{chain="c",status="failure"} 2.0' in text
    assert 'remediation_chain_duration_seconds_count{chain="c"} 2.0' in text
    assert (
        'remediation_chain_step_executions_total{chain="c",status="failure",step="fail"} 2.0'
        in text
    )


def test_config_check_reports_a_bad_condition_with_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "remediate.yml"
    path.write_text(
        """\
chains:
  - name: c
    playbooks:
      - name: disk-cleanup
      - name: drift-reconciliation
        condition: memory_availble < 20%
"""
    )
    with pytest.raises(ConfigErrors) as raised:
        load_settings(path)
    [error] = raised.value.errors
    assert (error.line, error.field) == (6, "chains[0].playbooks[1].condition")
    assert "unknown fact 'memory_availble'" in error.reason
    assert "did you mean: memory_available" in error.reason


def test_config_check_refuses_a_condition_on_a_step_that_comes_later(tmp_path: Path) -> None:
    path = tmp_path / "remediate.yml"
    path.write_text(
        """\
chains:
  - name: c
    playbooks:
      - name: disk-cleanup
        condition: steps.drift-reconciliation.success
      - name: drift-reconciliation
"""
    )
    with pytest.raises(ConfigErrors) as raised:
        load_settings(path)
    [error] = raised.value.errors
    assert error.line == 2 and error.field == "chains[0]"
    assert (
        "playbooks[0].condition: no earlier step runs playbook 'drift-reconciliation'"
        in error.reason
    )


def test_the_seed_chains_are_valid_defaults() -> None:
    names = [chain.name for chain in Settings().chains]
    assert names == ["full-recovery", "predictive-preemption", "database-health"]
