"""An alert storm: 100,000 alerts in at most 60 s, fresh and duplicate, several names and
instances, on SQLite and on PostgreSQL. Executions exactly as the limits allow (seven
routed names, each its own playbook: the global limit of 5 an hour admits five, the
15-minute cooldown none twice), no duplicate execution, every alert has its decision
row, and the receiver keeps answering."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tests.fixtures_databases import state_line
from tests.fixtures_monitoring import free_port, start_serve, stop_serve

ALERTS = 100_000
PER_NOTIFICATION = 100
ROUTED = 7
PLAYBOOK_OF = {f"Alert{n}": f"fix{n}" for n in range(ROUTED)}
NAMES = [*PLAYBOOK_OF, "Noise"]  # Noise has no route
GLOBAL_LIMIT = 5  # the seed's executions an hour


def _rows(tmp_path: Path, url: str | None, sql: str) -> list[tuple[Any, ...]]:
    if url is None:
        with sqlite3.connect(tmp_path / "state" / "remediate.db") as connection:
            return connection.execute(sql).fetchall()
    import psycopg

    with psycopg.connect(url) as connection:
        return connection.execute(sql).fetchall()


@pytest.mark.integration
def test_a_storm_is_decided_in_full_and_executes_only_what_the_limits_allow(
    tmp_path: Path, serve_store_url: str | None
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
        f"{state_line(tmp_path / 'state', serve_store_url)}\n"
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
                try:
                    health.append(httpx.get(f"{base}/health", timeout=10).status_code)
                except httpx.HTTPError as error:  # counted as a failure, not the end of it
                    health.append(-1)
                    print(f"/health: {error!r}")
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
    assert len(health) >= 3 and set(health) == {200}, health
    [(decisions,)] = _rows(tmp_path, serve_store_url, "SELECT count(*) FROM decisions")
    executed = _rows(
        tmp_path, serve_store_url, "SELECT playbook, count(*) FROM executions GROUP BY playbook"
    )
    refusals = dict(
        _rows(
            tmp_path,
            serve_store_url,
            "SELECT check_name, count(*) FROM decisions WHERE action = 'block' GROUP BY check_name",
        )
    )
    assert decisions == ALERTS
    # Five of the seven playbooks run, each once: the global limit, then the cooldown.
    assert sum(count for _, count in executed) == GLOBAL_LIMIT, executed
    assert {count for _, count in executed} == {1}, executed
    assert set(dict(executed)) <= set(PLAYBOOK_OF.values())
    assert refusals.get("rate_limit", 0) > 0, refusals  # the limits did bind
    ran = {marker.name: marker.read_text() for marker in markers.iterdir()}
    assert ran == dict.fromkeys(dict(executed), "x\n")  # on the host: exactly those, once
    print(f"\n{ALERTS} alerts decided in {elapsed:.1f} s ({ALERTS / elapsed:.0f} alerts/s)")
