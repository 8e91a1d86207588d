"""Docker and systemd adapters: the argv they build and how they read recorded real output.

No Docker engine runs here and `systemctl --user` has no bus (systemd is not
PID 1), so their output is replayed from tests/fixtures/services/ (see its
README for where each file came from) through the one subprocess seam.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from remediate.clock import ManualClock
from remediate.config.models import Service, Settings
from remediate.playbooks.base import Context
from remediate.playbooks.self_healing import SelfHealingRestart, SelfHealingSettings
from remediate.system.process import Completed
from remediate.system.services import (
    ContainerManager,
    ServiceError,
    SystemdManager,
    create_argv,
    manager_for,
    normalize_port,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "services"


class Replay:
    """A ProcessRunner answering each command from a recording, keyed by its first words."""

    def __init__(self, answers: Mapping[tuple[str, ...], tuple[int, str, str]]) -> None:
        self.answers = dict(answers)
        self.calls: list[tuple[str, ...]] = []

    def __call__(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        input: str | None = None,
    ) -> Completed:
        command = tuple(argv)
        self.calls.append(command)
        for prefix, (code, stdout, stderr) in self.answers.items():
            if command[: len(prefix)] == prefix:
                return Completed(command, code, stdout, stderr, 0.01)
        raise AssertionError(f"no recording for {command}")


def recorded(name: str) -> str:
    return (FIXTURES / name).read_text()


def context(runner: Replay, settings: Settings | None = None) -> Context:
    return Context(
        settings=settings or Settings(),
        runner=runner,
        clock=ManualClock.at("2025-12-24T10:00:00Z"),
        deadline=time.monotonic() + 60,
    )


def test_docker_inspect_of_an_oom_killed_container_is_read_field_by_field() -> None:
    runner = Replay({("docker", "inspect"): (0, recorded("docker-inspect-oom-killed.json"), "")})
    state = ContainerManager("docker", context(runner).run).inspect("proxy")
    assert runner.calls == [("docker", "inspect", "--type", "container", "proxy")]
    assert (state.exists, state.running, state.status) == (True, False, "exited")
    assert (state.exit_code, state.oom_killed, state.restart_count) == (137, True, 2)
    assert state.memory_limit == 64 * 1024 * 1024
    assert state.image == "nginx:1.27"
    assert state.env["UPSTREAM"] == "http://app:3000"
    assert state.labels["tier"] == "edge"
    assert state.ports == ("127.0.0.1:8080:80/tcp",)
    assert state.command == ("nginx", "-g", "daemon off;")
    assert state.started_at == pytest.approx(1766570321.220114316)
    assert state.finished_at == pytest.approx(1766570342.871650907)


def test_docker_inspect_of_a_healthy_container_reports_the_engine_health() -> None:
    runner = Replay(
        {("docker", "inspect"): (0, recorded("docker-inspect-running-healthy.json"), "")}
    )
    state = ContainerManager("docker", context(runner).run).inspect("app")
    assert (state.running, state.health, state.finished_at) == (True, "healthy", None)
    assert state.memory_limit is None
    assert state.ports == ("3000:3000/tcp",)


def test_an_unknown_docker_container_is_reported_as_missing_not_as_an_error() -> None:
    runner = Replay({("docker", "inspect"): (1, "[]\n", recorded("docker-inspect-missing.stderr"))})
    state = ContainerManager("docker", context(runner).run).inspect("ghost")
    assert state.exists is False


def test_unparseable_inspect_output_raises_a_service_error_naming_the_command() -> None:
    runner = Replay({("docker", "inspect"): (0, "<html>proxy error</html>", "")})
    with pytest.raises(ServiceError) as raised:
        ContainerManager("docker", context(runner).run).inspect("app")
    assert raised.value.message.startswith("docker inspect --type: cannot parse the output")
    assert raised.value.command[:2] == ("docker", "inspect")


def test_docker_events_are_read_with_until_and_normalised_to_podman_words() -> None:
    runner = Replay({("docker", "events"): (0, recorded("docker-events.jsonl"), "")})
    events = ContainerManager("docker", context(runner).run).events("proxy", 1766570000.0)
    [argv] = runner.calls
    assert argv[:4] == ("docker", "events", "--since", "2025-12-24T09:53:20.000000Z")
    assert argv[6:8] == ("--until", "0s")
    assert [(event.action, event.exit_code) for event in events] == [
        ("start", None),
        ("oom", None),
        ("died", 137),
    ]


def test_docker_stats_sizes_in_binary_units_become_bytes() -> None:
    runner = Replay({("docker", "stats"): (0, recorded("docker-stats.jsonl"), "")})
    memory = ContainerManager("docker", context(runner).run).container_memory()
    assert memory == {"app": int(42.5 * 1024**2), "cache": int(3.195 * 1024**2)}


def test_docker_restart_and_recreate_argv_have_the_same_shape_as_podman() -> None:
    service = Service(
        name="web",
        manager="docker",
        container="web-1",
        image="nginx:1.27",
        env={"B": "two words", "A": "1"},
        labels={"tier": "edge"},
        ports=("127.0.0.1:8080:80",),
        memory_limit="64MiB",
        command=("nginx", "-g", "daemon off;"),
    )
    manager = manager_for(service, context(Replay({})).run)
    assert manager.restart_argv("web-1", 10) == ("docker", "restart", "-t", "10", "web-1")
    assert manager.create_argv(service) == (
        *("docker", "run", "-d", "--name", "web-1"),
        *("--env", "A=1", "--env", "B=two words", "--label", "tier=edge"),
        *("-p", "127.0.0.1:8080:80", "--memory", "67108864"),
        *("nginx:1.27", "nginx", "-g", "daemon off;"),
    )


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("image", "--privileged", "is not an image name"),
        ("env", {"A;rm": "x"}, "is not a variable name"),
        ("labels", {"-x": "y"}, "is not allowed"),
        ("ports", ("80; reboot",), "not a port mapping"),
    ],
    ids=["image-like-an-option", "env-name-not-a-variable", "label-name-option", "port-not-a-port"],
)
def test_a_declaration_value_that_could_be_an_option_never_reaches_argv(
    field: str, value: object, reason: str
) -> None:
    values: dict[str, object] = {"name": "web", "image": "nginx:1.27", field: value}
    service = Service.model_validate(values)
    with pytest.raises(ValueError) as raised:
        create_argv("podman", service)
    assert reason in str(raised.value)


def test_port_mappings_compare_in_one_canonical_form() -> None:
    assert normalize_port("8080:80") == "8080:80/tcp"
    assert normalize_port("0.0.0.0:8080:80") == "8080:80/tcp"
    assert normalize_port("127.0.0.1:53:53/udp") == "127.0.0.1:53:53/udp"


def test_systemctl_show_of_an_oom_killed_unit_is_parsed() -> None:
    runner = Replay(
        {("systemctl", "--user", "show"): (0, recorded("systemctl-show-oom-kill.txt"), "")}
    )
    state = SystemdManager(context(runner).run).inspect("jellyfin.service")
    [argv] = runner.calls
    assert argv[:4] == ("systemctl", "--user", "show", "jellyfin.service")
    assert argv[4].startswith("--property=Id,LoadState,ActiveState,SubState,Result,")
    assert argv[5] == "--timestamp=unix"
    assert (state.running, state.status, state.oom_killed) == (False, "failed/failed", True)
    assert state.exit_code == 128 + 9  # killed by SIGKILL, reported the way engines do
    assert (state.memory_usage, state.memory_limit) == (None, 536870912)
    assert state.env == {
        "JELLYFIN_CACHE_DIR": "/var/cache/jellyfin",
        "JELLYFIN_PublishedServerUrl": "http://media.lan:8096",
    }
    assert (state.started_at, state.finished_at) == (1766570102.0, 1766570397.0)


def test_systemctl_show_of_a_running_unit_reads_memory_and_no_limit() -> None:
    runner = Replay({("systemctl",): (0, recorded("systemctl-show-running.txt"), "")})
    state = SystemdManager(context(runner).run).inspect("web.service")
    assert (state.running, state.exit_code, state.oom_killed) == (True, 0, False)
    assert (state.memory_usage, state.memory_limit, state.finished_at) == (73728000, None, None)
    assert state.env == {"PORT": "8080", "MODE": "production"}


def test_a_unit_systemd_does_not_know_is_missing() -> None:
    runner = Replay({("systemctl",): (0, recorded("systemctl-show-not-found.txt"), "")})
    assert SystemdManager(context(runner).run).inspect("ghost.service").exists is False


def test_systemctl_output_that_is_not_key_value_raises_a_service_error_naming_the_command() -> None:
    runner = Replay({("systemctl",): (0, "Failed to connect to bus: No medium found\n", "")})
    with pytest.raises(ServiceError) as raised:
        SystemdManager(context(runner).run).inspect("web.service")
    assert raised.value.message.startswith("systemctl --user show: cannot parse the output")


def test_a_failing_systemctl_is_a_service_error_with_its_last_words() -> None:
    runner = Replay({("systemctl",): (1, "", "Failed to connect to bus: No medium found\n")})
    with pytest.raises(ServiceError) as raised:
        SystemdManager(context(runner).run).restart("web.service", 10)
    assert raised.value.message == (
        "systemctl --user restart: exited 1: Failed to connect to bus: No medium found"
    )


def test_a_unit_name_without_a_suffix_is_a_service_unit_and_restarts_with_systemctl() -> None:
    service = Service(name="web", manager="systemd", unit="web")
    manager = manager_for(service, context(Replay({})).run)
    from remediate.system.services import object_name

    assert object_name(service) == "web.service"
    assert manager.restart_argv("web.service", 10) == (
        "systemctl",
        "--user",
        "restart",
        "web.service",
    )


def settings_with(*services: dict[str, object]) -> Settings:
    return Settings.model_validate({"services": list(services)})


def test_a_systemd_oom_kill_is_diagnosed_and_the_unit_restarted() -> None:
    show_oom = recorded("systemctl-show-oom-kill.txt")
    show_running = recorded("systemctl-show-running.txt").replace("web.service", "jellyfin.service")
    answers: dict[tuple[str, ...], tuple[int, str, str]] = {
        ("systemctl", "--user", "show"): (0, show_oom, ""),
        ("systemctl", "--user", "restart"): (0, "", ""),
    }
    runner = Replay(answers)
    settings = settings_with({"name": "jellyfin", "manager": "systemd", "unit": "jellyfin"})
    playbook = SelfHealingRestart(settings, SelfHealingSettings(backoff_seconds=(0,)))
    playbook.sleep = lambda _: None
    ctx = context(runner, settings)
    params = playbook.parse_parameters({"service": "jellyfin"})
    plan = playbook.plan(ctx, params)
    # After the restart, systemd shows the unit running (the same recorded layout).
    runner.answers[("systemctl", "--user", "show")] = (0, show_running, "")
    result = playbook.execute(ctx, plan, params)
    assert result.status == "success"
    assert result.root_cause == "oom_killed"
    assert [(i.kind, i.subject) for i in result.impacts] == [
        ("oom_detected", "jellyfin"),
        ("service_restarted", "jellyfin"),
    ]
    assert ("systemctl", "--user", "restart", "jellyfin.service") in runner.calls


def test_a_systemd_unit_restarted_over_and_over_is_a_crash_loop() -> None:
    runner = Replay(
        {("systemctl", "--user", "show"): (0, recorded("systemctl-show-crash-loop.txt"), "")}
    )
    settings = settings_with({"name": "worker", "manager": "systemd"})
    playbook = SelfHealingRestart(settings)
    ctx = context(runner, settings)
    diagnosis = playbook.diagnose(ctx, settings.services[0])
    assert diagnosis.root_cause == "crash_loop"
    assert diagnosis.evidence["deaths_in_window"] == 5
