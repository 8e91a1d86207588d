"""The same notification delivered four times at the same moment (Alertmanager in HA:
each peer sends it) and again after the run, as a retry: one execution, on a real
`remediate serve` on SQLite and on PostgreSQL. Every delivery gets its decision; the
repeats are refused by idempotency with their reason, in the answer and in the store."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tests.fixtures_databases import state_line
from tests.fixtures_monitoring import free_port, start_serve, stop_serve

NOTIFICATION = {
    "version": "4",
    "status": "firing",
    "receiver": "remediate",
    "groupKey": '{}:{alertname="DiskFull"}',
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "DiskFull", "instance": "nas", "path": "scratch"},
            "startsAt": "2026-11-24T10:00:00Z",
            "fingerprint": "0123456789abcdef",
        }
    ],
}


@pytest.mark.integration
def test_one_notification_delivered_at_once_and_again_after_a_retry_runs_once(
    tmp_path: Path, serve_store_url: str | None
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    config = tmp_path / "remediate.yml"
    config.write_text(
        f"""
{state_line(tmp_path / "state", serve_store_url)}
playbooks:
  commands:
    - name: clean
      parameters: {{path: {{type: string, pattern: "^[a-z]+$", required: true}}}}
      target_parameter: path
      steps:
        - {{name: mark, argv: ["sh", "-c", "echo x >> {markers}/$0", "{{path}}"]}}
routes:
  - {{alert: DiskFull, playbook: clean, confidence: 95,
      parameters: {{path: "{{{{.Labels.path}}}}"}}}}
"""
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve = start_serve(config, port, tmp_path / "serve.log")
    barrier = threading.Barrier(4)
    results: list[dict[str, Any]] = []
    lock = threading.Lock()

    def deliver() -> None:
        with httpx.Client(timeout=10) as client:  # a connection of its own, like a peer
            barrier.wait()
            response = client.post(f"{base}/webhook", json=NOTIFICATION)
            assert response.status_code == 200, response.text
            with lock:
                results.extend(response.json()["results"])

    try:
        threads = [threading.Thread(target=deliver) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert sorted(r["action"] for r in results) == ["blocked"] * 3 + ["executed"]
        [executed] = [r for r in results if r["action"] == "executed"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            run = httpx.get(f"{base}/decisions/{executed['decision_id']}", timeout=5).json()
            if run["status"] not in ("queued", "running"):
                break
            time.sleep(0.1)
        assert run["status"] == "success", run
        # Alertmanager retries (it saw a timeout, say): the same notification once more.
        retry = httpx.post(f"{base}/webhook", json=NOTIFICATION, timeout=10).json()["results"]
        stored = httpx.get(f"{base}/decisions?limit=100", timeout=5).json()
    finally:
        stop_serve(serve)
    results.extend(retry)
    assert [r["action"] for r in retry] == ["blocked"]
    refused = [r for r in results if r["action"] == "blocked"]
    assert len(refused) == 4
    assert all("same alert already handled" in r["reason"] for r in refused)
    # Five deliveries, five decisions; one execution among them; the refusals stored
    # with their check and reason.
    assert sorted(row["id"] for row in stored) == sorted(r["decision_id"] for r in results)
    assert [row["execution_id"] for row in stored if row["execution_id"]] == [
        executed["execution_id"]
    ]
    blocked_rows = [row for row in stored if row["action"] == "block"]
    assert len(blocked_rows) == 4
    assert {row["check_name"] for row in blocked_rows} == {"idempotency"}
    assert all("same alert already handled" in row["reason"] for row in blocked_rows)
    assert (markers / "scratch").read_text() == "x\n"  # on the host: once
