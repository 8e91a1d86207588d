"""self-healing-restart against real podman containers: diagnose, restart, verify, record."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from remediate.clock import SystemClock
from remediate.errors import ParameterError
from remediate.metrics import exposition, registry_for
from remediate.pipeline.pipeline import Pipeline
from remediate.pipeline.request import Request
from remediate.playbooks.base import Plan, Result
from remediate.playbooks.registry import Registry
from remediate.playbooks.self_healing import SelfHealingRestart, SelfHealingSettings
from remediate.store import Store
from remediate.system.process import Completed, run_process
from tests.fixtures_podman import (
    READY_COMMAND,
    ContainerFactory,
    Recording,
    live_context,
    podman,
    ready_check,
    services_settings,
)
from tests.helpers import settings_for

FIXTURES = Path(__file__).parent.parent / "fixtures" / "services"
FAST = SelfHealingSettings(backoff_seconds=(0, 1), verify_timeout_seconds=15, settle_seconds=1)


def playbook_for(*services: dict[str, object]) -> SelfHealingRestart:
    return SelfHealingRestart(services_settings(*services), FAST)


def run_playbook(
    playbook: SelfHealingRestart, service: str, runner: Recording | None = None
) -> tuple[Plan, Result]:
    ctx = live_context(playbook.settings, runner or Recording())
    params = playbook.parse_parameters({"service": service})
    plan = playbook.plan(ctx, params)
    result = playbook.verify(ctx, params, playbook.execute(ctx, plan, params))
    return plan, result


@pytest.mark.integration
def test_a_killed_container_is_restarted_and_its_root_cause_recorded(
    container_factory: ContainerFactory, tmp_path: Path, store: Store, store_url: str
) -> None:
    name = container_factory(prefix="web")
    podman("kill", name)
    settings = settings_for(
        tmp_path,
        store_url,
        services=[{"name": "web", "container": name}],
        playbooks={"settings": {"self-healing-restart": FAST.model_dump()}},
    )
    clock = SystemClock()
    pipeline = Pipeline(settings, store, Registry.from_settings(settings), clock=clock)

    decision, report = pipeline.run(Request("self-healing-restart", {"service": "web"}))

    assert decision.action == "execute" and report is not None
    assert report.status == "success", report.summary
    assert report.result is not None and report.result.root_cause == "exit_code"
    assert "exited with code 137" in report.summary
    state = json.loads(podman("inspect", name).stdout)[0]["State"]
    assert state["Running"] is True
    [row] = store.history()
    assert (row["status"], row["root_cause"], row["target"]) == ("success", "exit_code", "web")
    metrics = exposition(registry_for(store, settings, clock)).decode()
    assert 'remediation_self_healing_success_rate{root_cause="exit_code"} 1.0' in metrics
    assert (
        'remediation_services_restarted_total{playbook="self-healing-restart",service="web"} 1.0'
        in metrics
    )


@pytest.mark.integration
def test_a_container_whose_health_check_fails_is_restarted_until_it_passes(
    container_factory: ContainerFactory,
) -> None:
    name = container_factory(command=READY_COMMAND)
    podman("exec", name, "rm", "/tmp/ready")
    playbook = playbook_for({"name": "web", "container": name, "health_check": ready_check(name)})

    plan, result = run_playbook(playbook, "web")

    assert plan.summary == "web: health_check_failing"
    assert "health command podman exited 1" in plan.actions[0].description
    assert result.status == "success", result.summary
    assert result.root_cause == "health_check_failing"
    assert [(i.kind, i.subject) for i in result.impacts] == [("service_restarted", "web")]
    podman("exec", name, "test", "-f", "/tmp/ready")  # the restart's command recreated it


@pytest.mark.integration
def test_a_dependency_that_is_down_is_restarted_first(
    container_factory: ContainerFactory,
) -> None:
    database = container_factory(prefix="db")
    web = container_factory(prefix="web")
    podman("kill", database, web)
    playbook = playbook_for(
        {"name": "db", "container": database},
        {"name": "web", "container": web, "depends_on": ["db"]},
    )
    runner = Recording()

    plan, result = run_playbook(playbook, "web", runner)

    assert plan.summary == "web: dependency_down"
    restarts = [call[-1] for call in runner.calls if call[:2] == ("podman", "restart")]
    assert restarts == [database, web]
    assert result.status == "success", result.summary
    assert result.root_cause == "dependency_down"
    assert [(i.kind, i.subject) for i in result.impacts] == [
        ("service_restarted", "db"),
        ("service_restarted", "web"),
    ]
    for container in (database, web):
        assert json.loads(podman("inspect", container).stdout)[0]["State"]["Running"] is True


@pytest.mark.integration
def test_a_dependency_that_is_not_declared_is_reported_and_nothing_restarts(
    container_factory: ContainerFactory,
) -> None:
    web = container_factory(prefix="web")
    podman("kill", web)
    playbook = playbook_for({"name": "web", "container": web, "depends_on": ["ghost"]})
    runner = Recording()

    _, result = run_playbook(playbook, "web", runner)

    assert result.status == "failure" and result.root_cause == "dependency_down"
    assert "not declared as services: ghost" in result.summary
    assert not [call for call in runner.calls if call[1] in ("restart", "start")]


@pytest.mark.integration
def test_a_real_oom_kill_is_diagnosed_although_podman_does_not_flag_it(
    container_factory: ContainerFactory,
) -> None:
    # First start: dd needs a 64 MiB buffer under a 16 MiB limit, so the kernel kills it.
    # After a restart the marker file exists and the container just sleeps.
    script = "if [ -f /tmp/oomed ]; then exec sleep 1000; fi; touch /tmp/oomed; " + (
        "exec dd if=/dev/zero of=/dev/null bs=64M count=1"
    )
    name = container_factory(
        "--memory", "16m", "--memory-swap", "16m", command=("sh", "-c", script)
    )
    state: dict[str, object] = {}
    for _ in range(100):  # bounded: the kill comes within milliseconds
        state = json.loads(podman("inspect", name).stdout)[0]["State"]
        if not state["Running"]:
            break
        time.sleep(0.1)
    if state.get("ExitCode") != 137:
        pytest.skip(f"the kernel here did not OOM-kill the container (state {state})")
    playbook = playbook_for({"name": "hog", "container": name})

    plan, result = run_playbook(playbook, "hog")

    assert plan.summary == "hog: oom_killed"
    assert "exit code 137 (SIGKILL) under a memory limit of 16777216 bytes" in (
        plan.actions[0].description
    )
    assert result.root_cause == "oom_killed" and result.status == "success", result.summary
    assert ("oom_detected", "hog") in [(i.kind, i.subject) for i in result.impacts]


@pytest.mark.integration
def test_a_killed_container_with_a_memory_limit_is_not_mistaken_for_an_oom_kill(
    container_factory: ContainerFactory,
) -> None:
    name = container_factory("--memory", "64m")
    podman("kill", name)
    playbook = playbook_for({"name": "web", "container": name})
    diagnosis = playbook.diagnose(live_context(playbook.settings), playbook.settings.services[0])
    assert diagnosis.root_cause == "exit_code"


@pytest.mark.integration
def test_a_container_that_keeps_dying_is_a_crash_loop(
    container_factory: ContainerFactory,
) -> None:
    name = container_factory(command=("false",))
    for _ in range(2):
        podman("start", name)  # dies at once, again
    playbook = playbook_for({"name": "worker", "container": name})
    diagnosis = playbook.diagnose(live_context(playbook.settings), playbook.settings.services[0])
    assert diagnosis.root_cause == "crash_loop"
    assert diagnosis.evidence["deaths_in_window"] >= 3


@pytest.mark.integration
def test_a_healthy_service_is_skipped_and_nothing_is_restarted(
    container_factory: ContainerFactory,
) -> None:
    name = container_factory(command=READY_COMMAND)
    playbook = playbook_for({"name": "web", "container": name, "health_check": ready_check(name)})
    runner = Recording()

    _, result = run_playbook(playbook, "web", runner)

    assert (result.status, result.root_cause) == ("skipped", "healthy")
    assert not [call for call in runner.calls if call[1] == "restart"]


class RecordedInspect(Recording):
    """Answers `podman inspect` from a recording, runs everything else for real."""

    def __init__(self, inspect_output: str) -> None:
        super().__init__(run_process)
        self.inspect_output = inspect_output

    def __call__(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        input: str | None = None,
    ) -> Completed:
        if tuple(argv[:2]) == ("podman", "inspect"):
            self.calls.append(tuple(argv))
            return Completed(tuple(argv), 0, self.inspect_output, "", 0.01)
        if tuple(argv[:2]) == ("podman", "events"):
            self.calls.append(tuple(argv))
            return Completed(tuple(argv), 0, "", "", 0.01)
        return super().__call__(argv, timeout=timeout, env=env, cwd=cwd, input=input)


def test_the_oom_killed_flag_in_recorded_inspect_output_is_an_oom_kill() -> None:
    # Recorded from a real OOM kill here, with OOMKilled true as a cgroup v2 host reports it.
    runner = RecordedInspect((FIXTURES / "podman-inspect-oom-killed.json").read_text())
    playbook = playbook_for({"name": "hog", "container": "oom1"})
    ctx = live_context(playbook.settings, runner)
    plan = playbook.plan(ctx, playbook.parse_parameters({"service": "hog"}))
    assert plan.summary == "hog: oom_killed"
    assert plan.actions[0].description == "diagnosis: oom_killed: the engine reports OOMKilled"
    assert plan.actions[1].argv == ("podman", "restart", "-t", "10", "oom1")


def test_unparseable_inspect_output_is_a_failure_naming_the_command_not_a_crash(
    tmp_path: Path, sqlite_store: Store
) -> None:
    settings = settings_for(tmp_path, "sqlite://", services=[{"name": "web", "container": "web"}])
    pipeline = Pipeline(
        settings,
        sqlite_store,
        Registry.from_settings(settings),
        clock=SystemClock(),
        process_runner=RecordedInspect("Error: database is locked\n{"),
    )
    _, report = pipeline.run(Request("self-healing-restart", {"service": "web"}))
    assert report is not None and report.status == "failure"
    assert report.summary.startswith("podman inspect --type: cannot parse the output")


@pytest.mark.parametrize(
    ("playbook", "service", "reason"),
    [
        ("self-healing-restart", "ghost", "'ghost' is not a declared service (declared: web)"),
        ("service-restart", "web;reboot", "String should match pattern"),
        ("drift-reconciliation", "-rf", "String should match pattern"),
        ("service-restart", "wbe", "did you mean: web?"),
    ],
    ids=["undeclared", "shell-metacharacters", "leading-dash", "typo"],
)
def test_a_bad_or_undeclared_service_is_refused_before_any_command_runs(
    tmp_path: Path, sqlite_store: Store, playbook: str, service: str, reason: str
) -> None:
    settings = settings_for(tmp_path, "sqlite://", services=[{"name": "web", "container": "web"}])
    runner = Recording()
    pipeline = Pipeline(
        settings,
        sqlite_store,
        Registry.from_settings(settings),
        clock=SystemClock(),
        process_runner=runner,
    )
    with pytest.raises(ParameterError) as raised:
        pipeline.run(Request(playbook, {"service": service}))
    assert raised.value.parameter == "service"
    assert reason in raised.value.message
    assert runner.calls == []
    assert sqlite_store.history() == []
