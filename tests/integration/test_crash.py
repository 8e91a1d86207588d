"""SIGKILL the server under load, restart, on SQLite and on PostgreSQL: every alert that
got a 2xx has its decision, nothing runs twice, and interrupted executions show as such
and are escalated."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.fixtures_databases import state_line
from tests.fixtures_monitoring import free_port, start_serve, stop_serve


@pytest.mark.integration
def test_sigkill_under_load_loses_nothing_and_runs_nothing_twice(
    tmp_path: Path, serve_store_url: str | None
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    config = tmp_path / "remediate.yml"
    config.write_text(
        f"""
{state_line(tmp_path / "state", serve_store_url)}
safety:
  rate_limits: {{cooldown_minutes: 0, max_executions_per_hour: 100000,
                 max_executions_per_alert: 100000}}
  on_interrupted: escalate
playbooks:
  commands:
    - name: slow-mark
      parameters: {{name: {{type: string, pattern: "^n[0-9]+$", required: true}}}}
      target_parameter: name
      steps:
        - {{name: mark, argv: ["sh", "-c", "echo x >> {markers}/$0; sleep 1", "{{name}}"]}}
routes:
  - {{alert: Crash, playbook: slow-mark, confidence: 95,
      parameters: {{name: "{{{{.Labels.name}}}}"}}}}
"""
    )
    port = free_port()
    log = tmp_path / "serve.log"
    serve = start_serve(config, port, log)
    acknowledged: dict[str, int] = {}
    stop = threading.Event()

    def load(worker: int) -> None:
        count = 0
        while not stop.is_set() and count < 500:
            name = f"n{worker}{count:04d}"
            count += 1
            body = {
                "alerts": [
                    {
                        "status": "firing",
                        "labels": {"alertname": "Crash", "name": name, "instance": name},
                    }
                ]
            }
            try:
                response = httpx.post(f"http://127.0.0.1:{port}/webhook", json=body, timeout=5)
            except httpx.TransportError:
                return
            if response.status_code == 200:
                acknowledged[name] = response.json()["results"][0]["decision_id"]

    threads = [threading.Thread(target=load, args=(n,)) for n in range(1, 5)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    serve.send_signal(signal.SIGKILL)  # mid-load, mid-execution
    serve.wait(timeout=10)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert acknowledged, "no alert was acknowledged before the kill"

    serve = start_serve(config, port, log)
    try:
        base = f"http://127.0.0.1:{port}"
        rows = {
            decision_id: httpx.get(f"{base}/decisions/{decision_id}", timeout=5)
            for decision_id in acknowledged.values()
        }
        # Every acknowledged alert has its decision.
        assert all(response.status_code == 200 for response in rows.values())
        statuses = [response.json()["status"] for response in rows.values()]
        assert "interrupted" in statuses
        pending = httpx.get(f"{base}/approvals", timeout=5).json()
        interrupted = [r.json()["id"] for r in rows.values() if r.json()["status"] == "interrupted"]
        assert sorted(p["decision_id"] for p in pending) == sorted(interrupted)
    finally:
        stop_serve(serve)
    if serve_store_url:  # on PostgreSQL indeed: no SQLite file beside it
        assert not (tmp_path / "state" / "remediate.db").exists()
    # Nothing ran twice: every marker has at most one line.
    for marker in markers.iterdir():
        assert marker.read_text() == "x\n", marker.name
    print(
        f"\nacknowledged {len(acknowledged)} alerts before SIGKILL; "
        f"{statuses.count('interrupted')} interrupted and escalated"
    )
