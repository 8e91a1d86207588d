"""SIGKILL the server under load, restart, on SQLite and on PostgreSQL: every alert that
got a 2xx has its decision and, once the restarted server has run its queue, an outcome;
nothing runs twice; executions the kill interrupted show as such and are escalated or
resumed as `safety.on_interrupted` says."""

from __future__ import annotations

import re
import signal
import threading
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.fixtures_databases import state_line
from tests.fixtures_monitoring import free_port, start_serve, stop_serve


@pytest.mark.integration
@pytest.mark.parametrize("policy", ["escalate", "resume"])
def test_sigkill_under_load_loses_nothing_and_runs_nothing_twice(
    tmp_path: Path, serve_store_url: str | None, policy: str
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
  on_interrupted: {policy}
playbooks:
  commands:
    - name: slow-mark
      parameters: {{name: {{type: string, pattern: "^n[0-9]+$", required: true}}}}
      target_parameter: name
      steps:
        - {{name: mark, argv: ["sh", "-c", "echo x >> {markers}/$0; sleep 0.3", "{{name}}"]}}
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
    interrupted = _interrupted(log)
    assert interrupted, "the kill interrupted no execution"
    try:
        base = f"http://127.0.0.1:{port}"
        # Every acknowledged alert has its decision, and each gets its outcome: the
        # restarted server runs what was queued (and, resuming, what was interrupted).
        deadline = time.monotonic() + 90
        while True:
            rows = {
                name: httpx.get(f"{base}/decisions/{decision_id}", timeout=5)
                for name, decision_id in acknowledged.items()
            }
            assert all(response.status_code == 200 for response in rows.values())
            final = {name: response.json() for name, response in rows.items()}
            left = [row for row in final.values() if row["status"] in ("queued", "running")]
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert not left, f"{len(left)} never finished after the restart"
        pending = httpx.get(f"{base}/approvals", timeout=5).json()
    finally:
        stop_serve(serve)
    by_execution = {row["execution_id"]: name for name, row in final.items()}
    statuses = [row["status"] for row in final.values()]
    if policy == "escalate":
        # Interrupted they stay, each with an approval pending; every other one succeeded.
        # (One decided but never answered before the kill is not among `final`.)
        known = [e for e in interrupted if e in by_execution]
        assert {by_execution[e] for e in known} == {
            name for name, row in final.items() if row["status"] == "interrupted"
        }
        assert {final[by_execution[e]]["id"] for e in known} <= {p["decision_id"] for p in pending}
        assert len(pending) == len(interrupted)
        assert set(statuses) <= {"success", "interrupted"}
        twice: set[str] = set()
    else:
        # Resumed: a second attempt of the same decision ran and succeeded; nothing pends.
        assert pending == []
        assert set(statuses) == {"success"}
        twice = {name for name, row in final.items() if row["attempt"] == 2}
        assert 0 < len(twice) <= len(interrupted)
        assert all(row["attempt"] in (1, 2) for row in final.values())
    # Nothing ran twice: one line per alert that ran; one resumed after the kill has a
    # second line if its first attempt had got as far as writing one. Every acknowledged
    # alert ran, but one the kill interrupted may not have reached its step; one decided
    # but never answered may have run too.
    ran = {marker.name: marker.read_text() for marker in markers.iterdir()}
    stopped = {name for name, row in final.items() if row["status"] == "interrupted"}
    assert set(acknowledged) - stopped <= set(ran)
    for name, text in ran.items():
        if name in final:
            assert text in (("x\n", "x\nx\n") if name in twice else ("x\n",)), name
        else:
            assert text in (("x\n", "x\nx\n") if policy == "resume" else ("x\n",)), name
    if twice:
        assert any(ran.get(name) == "x\nx\n" for name in twice)  # the kill came mid-step
    print(
        f"\nacknowledged {len(acknowledged)} alerts before SIGKILL; "
        f"{len(interrupted)} interrupted and {policy}d"
    )


def _interrupted(log: Path) -> list[int]:
    """The executions the restart found interrupted, as `serve` logs them."""
    found = re.findall(r"marked \d+ execution\(s\) interrupted: \[([\d, ]*)\]", log.read_text())
    return [int(n) for n in found[-1].split(",")] if found else []
