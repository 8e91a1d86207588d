"""The whole loop with the real thing: Prometheus evaluates a rule, Alertmanager notifies
`remediate serve`, the playbook runs, and the resolved notification is recorded."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.fixtures_monitoring import (
    Exporter,
    free_port,
    start_alertmanager,
    start_prometheus,
    start_serve,
    stop_serve,
)
from tests.fixtures_podman import ContainerFactory, inspect, podman

TOKEN = "loop-token-5f2a9c"


def wait_for(what: str, check: object, timeout: float = 60.0) -> float:
    """Poll `check()` until truthy (bounded); returns the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.integration
def test_a_firing_alert_is_remediated_and_its_resolution_recorded(
    tmp_path: Path, exporter: Exporter
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    config = tmp_path / "remediate.yml"
    config.write_text(
        f"""
state: {{directory: {tmp_path / "state"}}}
playbooks:
  commands:
    - name: mark
      parameters: {{service: {{type: string, pattern: "^[a-z]+$", required: true}}}}
      steps: [{{name: mark, argv: ["touch", "{markers}/{{service}}"]}}]
routes:
  - {{alert: TestServiceDown, playbook: mark, confidence: 95,
      parameters: {{service: "{{{{.Labels.name}}}}"}}}}
"""
    )
    port = free_port()
    env = dict(os.environ, REMEDIATE_WEBHOOK_TOKEN=TOKEN)
    serve = start_serve(config, port, tmp_path / "serve.log", env=env)
    base = f"http://127.0.0.1:{port}"
    alertmanager = prometheus = None
    try:
        alertmanager, am_address = start_alertmanager(
            tmp_path / "alertmanager", webhook_url=f"{base}/webhook", token=TOKEN
        )
        exporter.set('test_service_up{name="web"}', 1)
        rules = {
            "groups": [
                {
                    "name": "test",
                    "rules": [
                        {
                            "alert": "TestServiceDown",
                            "expr": "test_service_up == 0",
                            "labels": {"severity": "critical"},
                        }
                    ],
                }
            ]
        }
        prometheus, _ = start_prometheus(
            tmp_path / "prometheus",
            targets=[exporter.address],
            rules=rules,
            alertmanager=am_address,
        )
        exporter.set('test_service_up{name="web"}', 0)
        took = wait_for("the playbook to run", lambda: (markers / "web").exists(), timeout=60)
        print(f"\nalert condition to remediation: {took:.1f} s")

        decisions = httpx.get(f"{base}/decisions", headers=_auth(), timeout=5).json()
        executed = [d for d in decisions if d["action"] == "execute"]
        assert executed and executed[0]["alertname"] == "TestServiceDown"
        assert executed[0]["parameters"] == {"service": "web"}

        exporter.set('test_service_up{name="web"}', 1)
        wait_for(
            "the resolved notification",
            lambda: any(
                d["check_name"] == "status"
                for d in httpx.get(f"{base}/decisions", headers=_auth(), timeout=5).json()
            ),
        )
        audit = (tmp_path / "state" / "decisions.jsonl").read_text()
        assert '"alert":"TestServiceDown"' in audit and '"success":true' in audit
        metrics = httpx.get(f"{base}/metrics", timeout=5).text
        assert 'remediation_playbook_executions_total{playbook="mark",status="success"}' in metrics
    finally:
        for process in (prometheus, alertmanager):
            if process is not None:
                process.stop()
        stop_serve(serve)


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.integration
def test_a_stopped_container_is_restarted_by_self_healing_from_a_real_alert(
    tmp_path: Path, exporter: Exporter, container_factory: ContainerFactory
) -> None:
    """ContainerNotRunning from real Prometheus and Alertmanager, routed by the built-in
    route to self-healing-restart, brings a real podman container back."""
    name = container_factory(prefix="web")

    def running() -> float:
        return 1.0 if inspect(name)["State"]["Running"] else 0.0

    exporter.follow(f'container_running{{name="{name}"}}', running)
    config = tmp_path / "remediate.yml"
    config.write_text(
        f"""
state: {{directory: {tmp_path / "state"}}}
services:
  - {{name: {name}, manager: podman, container: {name}}}
playbooks:
  settings:
    self-healing-restart: {{settle_seconds: 1}}
"""
    )
    port = free_port()
    env = dict(os.environ, REMEDIATE_WEBHOOK_TOKEN=TOKEN)
    serve = start_serve(config, port, tmp_path / "serve.log", env=env)
    base = f"http://127.0.0.1:{port}"
    alertmanager = prometheus = None
    try:
        alertmanager, am_address = start_alertmanager(
            tmp_path / "alertmanager", webhook_url=f"{base}/webhook", token=TOKEN
        )
        rules = {
            "groups": [
                {
                    "name": "containers",
                    "rules": [
                        {
                            "alert": "ContainerNotRunning",
                            "expr": "container_running == 0",
                            "labels": {"severity": "critical"},
                        }
                    ],
                }
            ]
        }
        prometheus, _ = start_prometheus(
            tmp_path / "prometheus",
            targets=[exporter.address],
            rules=rules,
            alertmanager=am_address,
        )
        time.sleep(2)  # a scrape or two with the container up
        podman("stop", "-t", "0", name)
        stopped = time.monotonic()
        wait_for("the container to stop", lambda: running() == 0.0, timeout=30)
        took = wait_for(
            "self-healing to restart the container", lambda: running() == 1.0, timeout=90
        )
        print(
            f"\ncontainer stopped to running again: {time.monotonic() - stopped:.1f} s "
            f"(restart seen {took:.1f} s after the stop was confirmed)"
        )

        decisions = httpx.get(f"{base}/decisions", headers=_auth(), timeout=5).json()
        executed = [d for d in decisions if d["action"] == "execute"]
        assert executed, decisions
        assert (executed[0]["alertname"], executed[0]["playbook"]) == (
            "ContainerNotRunning",
            "self-healing-restart",
        )
        assert executed[0]["parameters"] == {"service": name}
        wait_for(
            "the execution to be recorded",
            lambda: (
                httpx.get(
                    f"{base}/decisions/{executed[0]['id']}", headers=_auth(), timeout=5
                ).json()["status"]
                == "success"
            ),
        )
        audit = (tmp_path / "state" / "decisions.jsonl").read_text()
        assert '"playbook":"self-healing-restart"' in audit and '"success":true' in audit
        metrics = httpx.get(f"{base}/metrics", timeout=5).text
        assert (
            'remediation_playbook_executions_total{playbook="self-healing-restart",'
            'status="success"} 1.0'
        ) in metrics
        assert (
            f'remediation_services_restarted_total{{playbook="self-healing-restart",service="{name}"}}'
            in metrics
        )
    finally:
        for process in (prometheus, alertmanager):
            if process is not None:
                process.stop()
        stop_serve(serve)
