"""The Alertmanager receiver in-process against a real store and real command playbooks."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from remediate.clock import ManualClock
from remediate.pipeline.worker import Worker
from remediate.runtime import Runtime
from remediate.store import Store
from remediate.webhook.app import create_app
from tests.helpers import settings_for

TOKEN = "s3cret-token"


def seed_payload(**labels: str) -> dict[str, Any]:
    """The seed's test payload (SystemDiskSpaceCritical), with extra labels."""
    return {
        "receiver": "remediation-webhook",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "SystemDiskSpaceCritical",
                    "severity": "critical",
                    "component": "system",
                    "instance": "localhost",
                    "mountpoint": "/",
                    **labels,
                },
                "annotations": {
                    "summary": "System disk space critically low",
                    "description": "System SSD has only 18% free space.",
                },
            }
        ],
    }


def alert(alertname: str, status: str = "firing", **labels: str) -> dict[str, Any]:
    return {"status": status, "labels": {"alertname": alertname, **labels}, "annotations": {}}


def payload(*alerts: dict[str, Any]) -> dict[str, Any]:
    return {"version": "4", "status": "firing", "receiver": "remediate", "alerts": list(alerts)}


@pytest.fixture
def marker_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "markers"
    directory.mkdir()
    return directory


@pytest.fixture
def runtime(
    tmp_path: Path, store: Store, store_url: str, marker_dir: Path, clock: ManualClock
) -> Iterator[Runtime]:
    # `store` empties the database first (PostgreSQL is shared across tests).
    settings = settings_for(
        tmp_path,
        store_url,
        playbooks={
            "commands": [
                {
                    "name": "disk-cleanup-test",
                    "steps": [{"name": "mark", "argv": ["touch", str(marker_dir / "disk")]}],
                },
                {
                    "name": "restart-test",
                    "parameters": {
                        "service": {"type": "string", "pattern": "^[a-z0-9-]+$", "required": True}
                    },
                    "target_parameter": "service",
                    "steps": [
                        {"name": "mark", "argv": ["touch", str(marker_dir) + "/restart-{service}"]}
                    ],
                },
            ]
        },
        routes=[
            {"alert": "SystemDiskSpaceCritical", "playbook": "disk-cleanup-test", "confidence": 95},
            {"alert": "SystemDiskSpaceWarning", "playbook": "disk-cleanup-test", "confidence": 85},
            {
                "alert": "ContainerNotRunning",
                "playbook": "restart-test",
                "confidence": 90,
                "parameters": {"service": "{{.Labels.name}}"},
            },
            {
                "alert": "MemoryPressureHigh",
                "playbook": None,
                "confidence": 0,
                "description": "investigation only",
            },
        ],
    )
    built = Runtime.build(settings, clock=clock)
    yield built
    built.close()


@pytest.fixture
def client(runtime: Runtime) -> Iterator[TestClient]:
    worker = Worker(runtime.pipeline, threads=2, poll_seconds=0.2)
    with TestClient(create_app(runtime, token=TOKEN, worker=worker)) as test_client:
        test_client.headers["Authorization"] = f"Bearer {TOKEN}"
        yield test_client


def test_the_seed_payload_gets_the_seed_response(client: TestClient, marker_dir: Path) -> None:
    response = client.post("/webhook?wait=30", json=seed_payload())
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["alerts_received"]) == ("processed", 1)
    [result] = body["results"]
    assert {k: result[k] for k in ("alert", "action", "playbook", "result")} == {
        "alert": "SystemDiskSpaceCritical",
        "action": "executed",
        "playbook": "disk-cleanup-test",
        "result": "success",
    }
    assert isinstance(result["decision_id"], int)
    assert (marker_dir / "disk").exists()
    decision = client.get(f"/decisions/{result['decision_id']}").json()
    assert (decision["status"], decision["alertname"]) == ("success", "SystemDiskSpaceCritical")


def test_without_wait_it_answers_queued_and_the_worker_runs_it(
    client: TestClient, runtime: Runtime, marker_dir: Path
) -> None:
    result = client.post("/webhook", json=seed_payload()).json()["results"][0]
    assert (result["action"], result["result"]) == ("executed", "queued")
    for _ in range(200):
        row = runtime.store.decision(result["decision_id"])
        if row and row["status"] == "success":
            break
        threading.Event().wait(0.05)
    assert (marker_dir / "disk").exists()


@pytest.mark.parametrize(
    "auth",
    [None, "Bearer wrong", "Basic czNjcmV0LXRva2Vu", "Bearer "],
    ids=["none", "wrong", "basic", "empty"],
)
def test_a_missing_or_wrong_token_gets_401_and_nothing_is_recorded(
    client: TestClient, runtime: Runtime, auth: str | None
) -> None:
    headers = {"Authorization": auth} if auth else {}
    client.headers.pop("Authorization")
    response = client.post("/webhook", json=seed_payload(), headers=headers)
    assert response.status_code == 401
    assert runtime.store.history() == []


def test_the_token_may_come_in_the_query(client: TestClient) -> None:
    client.headers.pop("Authorization")
    assert client.post(f"/webhook?token={TOKEN}", json=seed_payload()).status_code == 200


def test_a_body_over_one_mebibyte_gets_413(client: TestClient, runtime: Runtime) -> None:
    big = seed_payload(padding="x" * (1024 * 1024))
    response = client.post("/webhook", json=big)
    assert response.status_code == 413
    assert runtime.store.history() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", None),
        (json.dumps({"status": "firing"}).encode(), "alerts"),
        (json.dumps({"alerts": [{"status": "burning", "labels": {}}]}).encode(), "alerts.0.status"),
        (
            json.dumps({"alerts": [{"status": "firing", "labels": {"a": 1}}]}).encode(),
            "alerts.0.labels.a",
        ),
    ],
    ids=["json", "missing", "status", "label-type"],
)
def test_invalid_input_gets_400_with_the_field(
    client: TestClient, runtime: Runtime, body: bytes, field: str | None
) -> None:
    response = client.post("/webhook", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400
    if field:
        assert response.json()["field"] == field
    else:
        assert "invalid JSON" in response.json()["error"]
    assert runtime.store.history() == []


def test_other_methods_get_405(client: TestClient) -> None:
    assert client.get("/webhook").status_code == 405
    assert client.put("/webhook", json={}).status_code == 405


@pytest.mark.parametrize(
    "name", ["jellyfin; rm -rf /", "../../etc", "-rf", "a\nb", "$(reboot)", "x" * 300]
)
def test_a_hostile_label_is_blocked_with_its_reason_and_never_reaches_a_command(
    client: TestClient, runtime: Runtime, marker_dir: Path, name: str
) -> None:
    response = client.post("/webhook?wait=5", json=payload(alert("ContainerNotRunning", name=name)))
    [result] = response.json()["results"]
    assert (result["action"], result["playbook"]) == ("blocked", "restart-test")
    assert "parameter 'service'" in result["reason"]
    assert list(marker_dir.iterdir()) == []
    assert runtime.store.history()[0]["check_name"] == "parameters"


def test_a_template_fills_the_declared_parameter(client: TestClient, marker_dir: Path) -> None:
    response = client.post(
        "/webhook?wait=10", json=payload(alert("ContainerNotRunning", name="web"))
    )
    assert response.json()["results"][0]["result"] == "success"
    assert (marker_dir / "restart-web").exists()


def test_a_missing_template_label_is_blocked(client: TestClient) -> None:
    [result] = client.post("/webhook", json=payload(alert("ContainerNotRunning"))).json()["results"]
    assert result["action"] == "blocked"
    assert "{{.Labels.name}} is not set" in result["reason"]


def test_resolved_investigation_only_and_unrouted_alerts_are_recorded_not_executed(
    client: TestClient, runtime: Runtime, marker_dir: Path
) -> None:
    body = payload(
        alert("SystemDiskSpaceCritical", status="resolved", instance="a"),
        alert("MemoryPressureHigh"),
        alert("SomethingElse"),
    )
    results = client.post("/webhook?wait=2", json=body).json()["results"]
    assert [r["action"] for r in results] == ["recorded", "recorded", "recorded"]
    assert "resolved" in results[0]["reason"]
    assert results[1]["reason"] == "investigation only"
    assert "no route" in results[2]["reason"]
    assert list(marker_dir.iterdir()) == []
    assert len(runtime.store.history()) == 3


def test_low_confidence_escalates_and_an_approval_runs_it_through_the_gate(
    client: TestClient, runtime: Runtime, marker_dir: Path
) -> None:
    [result] = client.post(
        "/webhook", json=payload(alert("SystemDiskSpaceWarning", instance="a"))
    ).json()["results"]
    assert result["action"] == "escalate"
    assert "85% is below the threshold 90%" in result["reason"]
    pending = client.get("/approvals").json()
    assert [p["id"] for p in pending] == [result["approval_id"]]
    approved = client.post(f"/approvals/{result['approval_id']}/approve").json()
    assert (approved["status"], approved["action"]) == ("approved", "execute")
    for _ in range(200):
        if (marker_dir / "disk").exists():
            break
        threading.Event().wait(0.05)
    assert (marker_dir / "disk").exists()
    again = client.post(f"/approvals/{result['approval_id']}/approve")
    assert again.status_code == 409
    assert client.get("/approvals").json() == []


def test_a_rejected_or_expired_approval_does_not_run(
    client: TestClient, runtime: Runtime, clock: ManualClock, marker_dir: Path
) -> None:
    first = client.post("/webhook", json=payload(alert("SystemDiskSpaceWarning", instance="a")))
    second = client.post("/webhook", json=payload(alert("SystemDiskSpaceWarning", instance="b")))
    rejected_id = first.json()["results"][0]["approval_id"]
    expired_id = second.json()["results"][0]["approval_id"]
    assert client.post(f"/approvals/{rejected_id}/reject").json()["status"] == "rejected"
    clock.advance(minutes=61)
    response = client.post(f"/approvals/{expired_id}/approve")
    assert response.status_code == 409 and "expired" in response.json()["error"]
    assert client.post("/approvals/999/approve").status_code == 404
    assert list(marker_dir.iterdir()) == []


def test_two_identical_deliveries_at_the_same_moment_execute_once(
    client: TestClient, runtime: Runtime
) -> None:
    # Alertmanager in HA: the same notification from two peers at once.
    barrier = threading.Barrier(4)
    results: list[dict[str, Any]] = []

    def deliver() -> None:
        barrier.wait()
        results.extend(client.post("/webhook", json=seed_payload()).json()["results"])

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    actions = sorted(r["action"] for r in results)
    assert actions == ["blocked", "blocked", "blocked", "executed"]
    blocked = [r for r in results if r["action"] == "blocked"]
    assert all("same alert already handled" in r["reason"] for r in blocked)


def test_decisions_list_newest_first(client: TestClient) -> None:
    client.post("/webhook", json=payload(alert("A"), alert("B")))
    rows = client.get("/decisions?limit=10").json()
    assert [row["alertname"] for row in rows] == ["B", "A"]
    assert client.get("/decisions/abc").status_code == 400
    assert client.get("/decisions/999999").status_code == 404
    # Past PostgreSQL's 32-bit ids (found by the fuzz test: it was a 503), and past 64 bits.
    assert client.get(f"/decisions/{2**31}").status_code == 404
    assert client.get(f"/decisions/{2**63}").status_code == 400
    assert client.get("/decisions/%C2%B2").status_code == 400  # '²' is a digit to isdigit
    assert client.post(f"/approvals/{2**31}/approve").status_code == 404


def test_the_openapi_document_describes_the_payload(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    payload_schema = document["components"]["schemas"]["WebhookPayload"]
    assert "alerts" in payload_schema["required"]
    assert "/webhook" in document["paths"]


def test_the_seed_payload_with_the_built_in_routes_runs_the_real_disk_cleanup(
    tmp_path: Path, store: Store, store_url: str, clock: ManualClock
) -> None:
    # The default routing table and the real disk-cleanup playbook, kept to a temp root.
    import os

    root = tmp_path / "logs"
    root.mkdir()
    old = root / "old.log"
    old.write_bytes(b"x" * 4096)
    os.utime(old, (0, 0))
    settings = settings_for(
        tmp_path,
        store_url,
        playbooks={
            "settings": {
                "disk-cleanup": {
                    "images": {"enabled": False},
                    "journal": {"enabled": False},
                    "paths": [{"root": str(root), "pattern": "*.log", "min_age_days": 1}],
                }
            }
        },
    )
    runtime = Runtime.build(settings, clock=clock)
    worker = Worker(runtime.pipeline, threads=1, poll_seconds=0.2)
    with TestClient(create_app(runtime, worker=worker)) as client:
        body = client.post("/webhook?wait=60", json=seed_payload()).json()
    runtime.close()
    [result] = body["results"]
    assert (body["status"], body["alerts_received"]) == ("processed", 1)
    assert {k: result[k] for k in ("alert", "action", "playbook", "result")} == {
        "alert": "SystemDiskSpaceCritical",
        "action": "executed",
        "playbook": "disk-cleanup",
        "result": "success",
    }
    assert not old.exists()


def test_a_route_may_name_a_chain_which_passes_the_gate_as_a_unit(
    tmp_path: Path, store: Store, store_url: str, clock: ManualClock, marker_dir: Path
) -> None:
    settings = settings_for(
        tmp_path,
        store_url,
        playbooks={
            "commands": [
                {
                    "name": "first",
                    "steps": [{"name": "x", "argv": ["touch", str(marker_dir / "1")]}],
                },
                {
                    "name": "second",
                    "steps": [{"name": "x", "argv": ["touch", str(marker_dir / "2")]}],
                },
            ]
        },
        chains=[
            {
                "name": "mini",
                "playbooks": [{"name": "first"}, {"name": "second"}],
                "strategy": "stop-on-failure",
                "preflight": [],
            }
        ],
        routes=[{"alert": "ChainMe", "chain": "mini", "confidence": 95}],
    )
    runtime = Runtime.build(settings, clock=clock)
    worker = Worker(runtime.pipeline, threads=1, poll_seconds=0.2)
    with TestClient(create_app(runtime, worker=worker)) as client:
        first = client.post("/webhook?wait=60", json=payload(alert("ChainMe"))).json()
        again = client.post("/webhook?wait=5", json=payload(alert("ChainMe"))).json()
    runtime.close()
    [result] = first["results"]
    assert (result["action"], result["playbook"], result["result"]) == (
        "executed",
        "chain:mini",
        "success",
    )
    assert sorted(p.name for p in marker_dir.iterdir()) == ["1", "2"]
    assert again["results"][0]["action"] == "blocked"
    assert "same alert already handled" in again["results"][0]["reason"]
