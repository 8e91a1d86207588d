"""service-restart against real podman containers: graceful restart, then verify."""

from __future__ import annotations

import json

import pytest

from remediate.playbooks.service_restart import ServiceRestart, ServiceRestartSettings
from tests.fixtures_podman import (
    READY_COMMAND,
    ContainerFactory,
    Recording,
    live_context,
    podman,
    ready_check,
    services_settings,
)

pytestmark = pytest.mark.integration
FAST = ServiceRestartSettings(stop_timeout_seconds=1, verify_timeout_seconds=5, settle_seconds=3)


def started_at(name: str) -> str:
    started: str = json.loads(podman("inspect", name).stdout)[0]["State"]["StartedAt"]
    return started


def test_a_running_service_is_restarted_and_verified_healthy(
    container_factory: ContainerFactory,
) -> None:
    name = container_factory(command=READY_COMMAND)
    before = started_at(name)
    playbook = ServiceRestart(
        services_settings({"name": "web", "container": name, "health_check": ready_check(name)}),
        FAST,
    )
    runner = Recording()
    ctx = live_context(playbook.settings, runner)
    params = playbook.parse_parameters({"service": "web"})

    plan = playbook.plan(ctx, params)
    assert runner.calls == []  # the plan only describes
    assert plan.actions[0].argv == ("podman", "restart", "-t", "1", name)
    assert plan.actions[1].description.startswith("verify web is healthy within 5s")

    result = playbook.execute(ctx, plan, params)

    assert result.status == "success", result.summary
    assert result.summary.startswith("web restarted: health command podman exited 0")
    assert [(i.kind, i.value, i.subject) for i in result.impacts] == [
        ("service_restarted", 1, "web")
    ]
    assert started_at(name) > before


def test_a_service_that_does_not_come_back_healthy_is_a_failure(
    container_factory: ContainerFactory,
) -> None:
    name = container_factory()  # never creates /tmp/ready
    playbook = ServiceRestart(
        services_settings({"name": "web", "container": name, "health_check": ready_check(name)}),
        ServiceRestartSettings(stop_timeout_seconds=1, verify_timeout_seconds=2),
    )
    playbook.sleep = lambda _: None  # the loop stays bounded by its deadline
    ctx = live_context(playbook.settings)
    params = playbook.parse_parameters({"service": "web"})

    result = playbook.execute(ctx, playbook.plan(ctx, params), params)

    assert result.status == "failure"
    assert "not healthy within 2s: health command podman exited 1" in result.summary


def test_a_service_that_exits_right_after_the_restart_fails_without_waiting_out_the_timeout(
    container_factory: ContainerFactory,
) -> None:
    # Runs until restarted; from then on it exits 3 at once.
    script = "if [ -f /tmp/started ]; then exit 3; fi; touch /tmp/started; exec sleep 1000"
    name = container_factory(command=("sh", "-c", script))
    playbook = ServiceRestart(services_settings({"name": "job", "container": name}), FAST)
    ctx = live_context(playbook.settings)
    params = playbook.parse_parameters({"service": "job"})

    result = playbook.execute(ctx, playbook.plan(ctx, params), params)

    assert result.status == "failure"
    # podman shows "stopped" for a moment before "exited": either way it exited with 3.
    assert "(exit code 3) after starting again" in result.summary


def test_restarting_a_container_that_does_not_exist_is_a_failure(podman_image: str) -> None:
    playbook = ServiceRestart(
        services_settings({"name": "web", "container": "remediate-no-such-container-1"}), FAST
    )
    ctx = live_context(playbook.settings)
    params = playbook.parse_parameters({"service": "web"})
    result = playbook.execute(ctx, playbook.plan(ctx, params), params)
    assert (result.status, result.summary) == (
        "failure",
        "podman has no remediate-no-such-container-1",
    )
