"""The podman adapter and the health checks against real containers and real sockets."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from remediate.config.models import HealthCheck, Service
from remediate.errors import RemediateError
from remediate.system.health import check_health
from remediate.system.services import ContainerManager, ServiceError
from tests.fixtures_monitoring import free_port
from tests.fixtures_podman import ContainerFactory, live_context, podman, services_settings
from tests.helpers import require_binary

pytestmark = pytest.mark.integration


def manager() -> ContainerManager:
    return ContainerManager("podman", live_context(services_settings()).run)


def test_inspect_reads_what_a_running_container_was_given(
    container_factory: ContainerFactory,
) -> None:
    port = free_port()
    name = container_factory(
        *("--env", "MODE=blue", "--label", "tier=edge", "-p", f"127.0.0.1:{port}:80"),
        *("--memory", "64m"),
        command=("sleep", "1000"),
    )
    state = manager().inspect(name)
    assert (state.exists, state.running, state.status) == (True, True, "running")
    assert state.env["MODE"] == "blue"
    assert state.labels == {"tier": "edge"}
    assert state.memory_limit == 64 * 1024 * 1024
    assert state.command == ("sleep", "1000")
    assert state.image == "localhost/remediate-test-bb:latest"
    assert state.ports == (f"127.0.0.1:{port}:80/tcp",)
    assert state.started_at is not None and state.finished_at is None


def test_a_container_that_does_not_exist_is_reported_missing() -> None:
    require_binary("podman", "podman")
    assert manager().inspect("remediate-no-such-container-0").exists is False


def test_a_killed_container_exits_137_and_the_kill_is_in_the_event_log(
    container_factory: ContainerFactory,
) -> None:
    name = container_factory()
    started = manager().inspect(name).started_at
    assert started is not None
    podman("kill", name)
    state = manager().inspect(name)
    assert (state.running, state.exit_code, state.oom_killed) == (False, 137, False)
    actions = [event.action for event in manager().events(name, started - 1)]
    assert "kill" in actions and "died" in actions
    assert actions.index("kill") < actions.index("died")


def test_restart_starts_the_container_anew(container_factory: ContainerFactory) -> None:
    name = container_factory()
    before = manager().inspect(name)
    manager().restart(name, stop_timeout=0)
    after = manager().inspect(name)
    assert after.running
    assert after.started_at is not None and before.started_at is not None
    assert after.started_at > before.started_at


def test_stop_and_start_go_through_the_engine(container_factory: ContainerFactory) -> None:
    name = container_factory()
    manager().stop(name, stop_timeout=0)
    assert manager().inspect(name).running is False
    manager().start(name)
    assert manager().inspect(name).running is True


def test_restarting_a_missing_container_is_a_service_error_naming_the_command(
    podman_image: str,
) -> None:
    with pytest.raises(ServiceError) as raised:
        manager().restart("remediate-no-such-container-0", stop_timeout=0)
    assert raised.value.message.startswith("podman restart -t: exited 125")
    assert "no such container" in raised.value.message


def test_container_memory_reports_bytes_for_each_running_container(
    container_factory: ContainerFactory,
) -> None:
    name = container_factory()
    memory = manager().container_memory()
    assert memory[name] > 0


def test_recreating_from_a_declaration_runs_exactly_what_was_declared(
    container_factory: ContainerFactory,
) -> None:
    name = container_factory.adopt(f"decl-{time.monotonic_ns()}")
    service = Service(
        name="decl",
        container=name,
        image="localhost/remediate-test-bb:latest",
        env={"GREETING": "hello world"},
        labels={"owner": "tests"},
        memory_limit="32MiB",
        command=("sleep", "1000"),
    )
    manager().create(service)
    state = manager().inspect(name)
    assert state.running and state.env["GREETING"] == "hello world"
    assert (state.labels["owner"], state.memory_limit) == ("tests", 32 * 1024 * 1024)


# --- health checks --------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        codes = {"/ok": 200, "/moved": 302, "/broken": 503}
        self.send_response(codes.get(self.path, 404))
        if self.path == "/moved":
            self.send_header("Location", "/broken")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.mark.parametrize(
    ("path", "healthy", "said"),
    [("/ok", True, "answered 200"), ("/moved", True, "answered 302"), ("/broken", False, "503")],
    ids=["2xx", "3xx-not-followed", "5xx"],
)
def test_an_http_health_check_counts_2xx_and_3xx_as_healthy(
    http_server: str, path: str, healthy: bool, said: str
) -> None:
    run = live_context(services_settings()).run
    health = check_health(HealthCheck(http=http_server + path, timeout_seconds=5), run)
    assert health.healthy is healthy
    assert said in health.detail


def test_a_tcp_health_check_needs_a_listener() -> None:
    run = live_context(services_settings()).run
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = listener.getsockname()[1]
        assert check_health(HealthCheck(tcp=port, timeout_seconds=2), run).healthy
    closed = check_health(HealthCheck(tcp=port, timeout_seconds=2), run)
    assert closed.healthy is False and f"127.0.0.1:{port}" in closed.detail


def test_a_command_health_check_reports_the_exit_code_and_last_words() -> None:
    run = live_context(services_settings()).run
    check = HealthCheck(command=("sh", "-c", "echo database unreachable >&2; exit 3"))
    health = check_health(check, run)
    assert health == (False, "health command sh exited 3: database unreachable")
    assert check_health(HealthCheck(command=("true",)), run).healthy


def test_service_error_belongs_to_the_one_error_tree() -> None:
    assert issubclass(ServiceError, RemediateError)
