"""SIGKILL a real `remediate chain run` mid-step, see it as interrupted, resume it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest

from remediate.store import Store

REMEDIATE = str(Path(sys.executable).parent / "remediate")


def remediate(config: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [REMEDIATE, "-c", str(config), *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def write_config(tmp_path: Path, store_url: str, chain: str, work: Path) -> Path:
    config = tmp_path / "remediate.yml"
    config.write_text(
        f"""
state: {{directory: {tmp_path / "state"}, url: "{store_url}"}}
safety: {{rate_limits: {{cooldown_minutes: 0, max_executions_per_hour: 100}}}}
playbooks:
  commands:
    - name: mark
      parameters: {{file: {{type: string, pattern: "^[a-z]+$", required: true}}}}
      target_parameter: file
      steps: [{{name: touch, argv: ["sh", "-c", 'echo x >> "$0"', "{work}/{{file}}"]}}]
    # Hangs until the test creates `release`; writes its pid so the test can find it.
    - name: slow
      steps:
        - name: wait
          argv: ["sh", "-c", 'test -e "$0/release" && exit 0; echo $$ > "$0/pid"; exec sleep 300',
                 "{work}"]
chains:
  - name: {chain}
    strategy: stop-on-failure
    max_duration: 600
    playbooks:
      - {{name: mark, parameters: {{file: one}}}}
      - {{name: slow, timeout: 400}}
      - {{name: mark, parameters: {{file: three}}}}
"""
    )
    return config


def wait_for(path: Path, process: subprocess.Popen[bytes]) -> None:
    for _ in range(600):  # bounded: 30 s at most
        if path.exists() and path.read_text().strip():
            return
        if process.poll() is not None:
            pytest.fail(f"the chain exited early: {process.returncode}")
        time.sleep(0.05)
    pytest.fail(f"{path} never appeared")


@pytest.mark.integration
def test_a_chain_killed_with_sigkill_mid_step_shows_interrupted_and_resumes_without_repeating(
    tmp_path: Path, store_url: str
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    chain = f"resume-{uuid.uuid4().hex[:8]}"
    config = write_config(tmp_path, store_url, chain, work)
    process = subprocess.Popen(
        [REMEDIATE, "-c", str(config), "chain", "run", chain],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    orphan: psutil.Process | None = None
    try:
        wait_for(work / "pid", process)
        orphan = psutil.Process(int((work / "pid").read_text()))
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)  # reaped: its pid is gone, as after a crash
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        # The step's own process group outlives its parent (it runs in a session of its own).
        if orphan is not None and orphan.is_running():
            orphan.kill()
    assert process.returncode == -signal.SIGKILL

    listing = remediate(config, "chain", "status", "--format", "json")
    assert listing.returncode == 0, listing.stderr
    [run] = [item for item in json.loads(listing.stdout) if item["chain"] == chain]
    shown = remediate(config, "chain", "status", str(run["id"]), "--format", "json")
    before: dict[str, Any] = json.loads(shown.stdout)
    assert before["status"] == "interrupted"
    assert [step["status"] for step in before["steps"]] == ["success", "interrupted", "pending"]
    assert any(f"chain resume {run['id']}" in hint for hint in before["next"])

    (work / "release").touch()
    resumed = remediate(config, "chain", "resume", str(run["id"]), "--format", "json")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    after = json.loads(resumed.stdout)
    assert after["status"] == "success"
    assert [step["status"] for step in after["steps"]] == ["success", "success", "success"]
    # The finished first step was not repeated: its command ran once.
    assert (work / "one").read_text() == "x\n"
    assert (work / "three").read_text() == "x\n"

    # Step 2's first execution died with the process and is recorded as interrupted.
    assert executions_of(store_url, run["id"]) == [
        ("mark", "success"),
        ("slow", "interrupted"),
        ("slow", "success"),
        ("mark", "success"),
    ]


def executions_of(store_url: str, run_id: int) -> list[tuple[str, str]]:
    """(playbook, status) of every execution the run's steps asked for, in order."""
    import sqlalchemy as sa

    from remediate.store import tables as t

    e, d, r = t.executions, t.decisions, t.requests
    store = Store.open(store_url)
    try:
        with store.reading() as connection:
            rows = connection.execute(
                sa.select(e.c.playbook, e.c.status)
                .select_from(e.join(d, d.c.id == e.c.decision_id).join(r, r.c.id == d.c.request_id))
                .where(r.c.chain_run_id == run_id)
                .order_by(e.c.id)
            ).all()
    finally:
        store.close()
    return [(row.playbook, row.status) for row in rows]
