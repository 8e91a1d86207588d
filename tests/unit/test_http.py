"""The HTTP app in-process: health and metrics against a real store."""

from __future__ import annotations

from pathlib import Path

from starlette.testclient import TestClient

from remediate.clock import ManualClock
from remediate.pipeline.request import Request
from remediate.runtime import Runtime
from remediate.webhook.app import create_app
from tests.helpers import settings_for


def runtime_for(tmp_path: Path, url: str, clock: ManualClock) -> Runtime:
    settings = settings_for(
        tmp_path,
        url,
        playbooks={"commands": [{"name": "ok", "steps": [{"name": "x", "argv": ["true"]}]}]},
    )
    return Runtime.build(settings, clock=clock)


def test_health_reports_the_store_pause_and_queue(tmp_path: Path, clock: ManualClock) -> None:
    runtime = runtime_for(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", clock)
    runtime.pipeline.decide(Request("ok"))  # admitted, not executed: one in the queue
    runtime.store.set_flag("paused", {"reason": "test"}, now=clock.now())
    with TestClient(create_app(runtime)) as client:
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "store": "ok",
        "paused": True,
        "queue_depth": 1,
        "running": 0,
        "open_breakers": [],
        "pending_approvals": 0,
    }


def test_health_is_503_when_the_store_is_unreachable(tmp_path: Path, clock: ManualClock) -> None:
    runtime = runtime_for(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", clock)
    (tmp_path / "db.sqlite").unlink()
    (tmp_path / "db.sqlite").mkdir()  # a directory where the database was: unusable
    runtime.store.close()  # drop the open connections: the next ones open the directory
    with TestClient(create_app(runtime)) as client:
        response = client.get("/health")
        metrics = client.get("/metrics")
    assert response.status_code == 503
    assert response.json()["status"] == "unhealthy"
    assert metrics.status_code == 503


def test_metrics_are_served_from_the_store(tmp_path: Path, clock: ManualClock) -> None:
    runtime = runtime_for(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", clock)
    runtime.pipeline.run(Request("ok"))
    with TestClient(create_app(runtime)) as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'remediation_playbook_executions_total{playbook="ok",status="success"} 1.0' in (
        response.text
    )


def test_other_methods_get_405(tmp_path: Path, clock: ManualClock) -> None:
    runtime = runtime_for(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", clock)
    with TestClient(create_app(runtime)) as client:
        assert client.post("/health").status_code == 405
