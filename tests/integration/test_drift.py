"""drift-reconciliation against real podman containers: find differences, recreate, verify."""

from __future__ import annotations

import pytest

from remediate.config.models import Service
from remediate.errors import ConfigError
from remediate.playbooks.drift import DriftReconciliation, DriftSettings, differences
from remediate.system.services import ServiceState
from tests.fixtures_podman import (
    IMAGE,
    ContainerFactory,
    Recording,
    inspect,
    live_context,
    services_settings,
)

FAST = DriftSettings(verify_timeout_seconds=10, settle_seconds=1, stop_timeout_seconds=1)


def declared(name: str, **fields: object) -> dict[str, object]:
    return {
        "name": "web",
        "container": name,
        "image": IMAGE,
        "command": ["sleep", "1000"],
        **fields,
    }


@pytest.mark.integration
def test_a_container_running_another_env_value_is_recreated_from_its_declaration(
    container_factory: ContainerFactory,
) -> None:
    name = container_factory("--env", "MODE=blue", "--label", "tier=edge", "--memory", "64m")
    playbook = DriftReconciliation(
        services_settings(
            declared(name, env={"MODE": "green"}, labels={"tier": "edge"}, memory_limit="32MiB")
        ),
        FAST,
    )
    runner = Recording()
    ctx = live_context(playbook.settings, runner)
    params = playbook.parse_parameters({"service": "web"})

    plan = playbook.plan(ctx, params)

    assert [call[:2] for call in runner.calls] == [("podman", "inspect")]  # plan only reads
    assert [action.render() for action in plan.actions] == [
        "drift env.MODE: declared 'green', running 'blue'",
        "drift memory_limit: declared 33554432, running 67108864",
        f"stop container {name}: podman stop -t 1 {name}",
        f"remove container {name}: podman rm -f {name}",
        f"create {name} from its declaration: podman run -d --name {name} --env MODE=green "
        f"--label tier=edge --memory 33554432 {IMAGE} sleep 1000",
    ]

    result = playbook.execute(ctx, plan, params)

    assert result.status == "success", result.summary
    assert [(i.kind, i.subject) for i in result.impacts] == [("service_restarted", "web")]
    config = inspect(name)
    assert "MODE=green" in config["Config"]["Env"]
    assert config["HostConfig"]["Memory"] == 32 * 1024 * 1024
    assert config["State"]["Running"] is True
    again = playbook.plan(live_context(playbook.settings), params)
    assert again.summary == "web: no drift"


@pytest.mark.integration
def test_a_service_without_drift_is_skipped_and_left_alone(
    container_factory: ContainerFactory,
) -> None:
    name = container_factory("--env", "MODE=blue")
    playbook = DriftReconciliation(services_settings(declared(name, env={"MODE": "blue"})), FAST)
    runner = Recording()
    ctx = live_context(playbook.settings, runner)
    params = playbook.parse_parameters({"service": "web"})

    result = playbook.execute(ctx, playbook.plan(ctx, params), params)

    assert result.status == "skipped"
    assert [call[:2] for call in runner.calls] == [("podman", "inspect")]


@pytest.mark.integration
def test_a_declared_container_that_is_missing_is_created(
    container_factory: ContainerFactory,
) -> None:
    name = container_factory.adopt(f"created-{id(object())}")
    playbook = DriftReconciliation(services_settings(declared(name, labels={"a": "b"})), FAST)
    ctx = live_context(playbook.settings)
    params = playbook.parse_parameters({"service": "web"})

    plan = playbook.plan(ctx, params)
    assert plan.actions[0].description == "drift exists: declared True, running False"
    assert [action.argv[:2] for action in plan.actions[1:] if action.argv] == [("podman", "run")]

    result = playbook.execute(ctx, plan, params)
    assert result.status == "success", result.summary
    assert inspect(name)["Config"]["Labels"] == {"a": "b"}


@pytest.mark.integration
def test_a_service_that_declares_no_image_cannot_be_recreated(
    container_factory: ContainerFactory,
) -> None:
    name = container_factory("--env", "MODE=blue")
    settings = services_settings({"name": "web", "container": name, "env": {"MODE": "green"}})
    playbook = DriftReconciliation(settings, FAST)
    ctx = live_context(settings)
    with pytest.raises(ConfigError) as raised:
        playbook.plan(ctx, playbook.parse_parameters({"service": "web"}))
    assert raised.value.field == "services.web"
    assert "declares no image" in raised.value.reason


def test_extra_env_and_labels_from_the_image_are_not_drift() -> None:
    service = Service(name="web", image="bb", env={"A": "1"}, labels={"x": "y"})
    state = ServiceState(
        name="web",
        exists=True,
        running=True,
        image="localhost/bb:latest",
        env={"A": "1", "PATH": "/bin"},
        labels={"x": "y", "org.opencontainers.image.version": "1"},
    )
    assert differences(service, state, systemd=False) == []


def test_ports_are_compared_in_canonical_form() -> None:
    service = Service(name="web", image="bb", ports=("0.0.0.0:8080:80", "53:53/udp"))
    state = ServiceState(
        name="web", exists=True, image="bb:latest", ports=("53:53/udp", "8080:80/tcp")
    )
    assert differences(service, state, systemd=False) == []
    moved = ServiceState(name="web", exists=True, image="bb", ports=("9090:80/tcp",))
    [difference] = differences(service, moved, systemd=False)
    assert difference.field == "ports"
