"""An alert storm: 100,000 alerts in at most 60 s, fresh and duplicate, several names and
instances. Executions exactly as the limits allow, no duplicate execution, every alert
has its decision row, and the receiver keeps answering."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.fixtures_monitoring import free_port, start_serve, stop_serve

ALERTS = 100_000
PER_NOTIFICATION = 100
NAMES = ["DiskA", "DiskB", "ServiceC", "ServiceD", "Noise"]  # Noise has no route
PLAYBOOK_OF = {"DiskA": "clean", "DiskB": "clean", "ServiceC": "heal", "ServiceD": "poke"}


@pytest.mark.integration
def test_a_storm_is_decided_in_full_and_executes_only_what_the_limits_allow(
    tmp_path: Path,
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    playbooks = "\n".join(
        f"""    - name: {name}
      steps: [{{name: x, argv: ["sh", "-c", "echo x >> {markers}/{name}"]}}]"""
        for name in sorted(set(PLAYBOOK_OF.values()))
    )
    routes = "\n".join(
        f"  - {{alert: {alert}, playbook: {playbook}, confidence: 95}}"
        for alert, playbook in PLAYBOOK_OF.items()
    )
    config = tmp_path / "remediate.yml"
    config.write_text(
        f"state: {{directory: {tmp_path / 'state'}}}\n"
        f"playbooks:\n  commands:\n{playbooks}\nroutes:\n{routes}\n"
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve = start_serve(config, port, tmp_path / "serve.log")
    statuses: list[int] = []
    health: list[int] = []
    try:
        notifications = ALERTS // PER_NOTIFICATION
        counter = iter(range(notifications))
        lock = threading.Lock()
        started = time.monotonic()

        def send() -> None:
            with httpx.Client(timeout=30) as client:
                while time.monotonic() - started < 60:
                    with lock:
                        number = next(counter, None)
                    if number is None:
                        return
                    alerts = [
                        {
                            "status": "firing",
                            "labels": {
                                "alertname": NAMES[(number + i) % len(NAMES)],
                                # half the instances repeat (duplicates), half are fresh
                                "instance": f"host{i % 10}" if i % 2 else f"n{number}-{i}",
                            },
                        }
                        for i in range(PER_NOTIFICATION)
                    ]
                    response = client.post(f"{base}/webhook", json={"alerts": alerts})
                    with lock:
                        statuses.append(response.status_code)

        def probe() -> None:
            while time.monotonic() - started < 60 and len(statuses) < notifications:
                health.append(httpx.get(f"{base}/health", timeout=10).status_code)
                time.sleep(0.5)

        threads = [threading.Thread(target=send) for _ in range(8)]
        threads.append(threading.Thread(target=probe))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        time.sleep(2)  # let the worker run what was admitted
    finally:
        stop_serve(serve)

    assert statuses.count(200) == ALERTS // PER_NOTIFICATION, "not every notification answered"
    assert health and set(health) == {200}
    with sqlite3.connect(tmp_path / "state" / "remediate.db") as connection:
        decisions = connection.execute("SELECT count(*) FROM decisions").fetchone()[0]
        executed = connection.execute(
            "SELECT playbook, count(*) FROM executions GROUP BY playbook"
        ).fetchall()
        duplicates = connection.execute(
            "SELECT count(*) FROM (SELECT decision_id FROM executions "
            "GROUP BY decision_id HAVING count(*) > 1)"
        ).fetchone()[0]
    assert decisions == ALERTS
    # Within one minute the 15-minute cooldown admits each playbook exactly once.
    assert dict(executed) == {"clean": 1, "heal": 1, "poke": 1}
    assert duplicates == 0
    for marker in markers.iterdir():
        assert marker.read_text() == "x\n"
    print(f"\n{ALERTS} alerts decided in {elapsed:.1f} s ({ALERTS / elapsed:.0f} alerts/s)")
