"""As a user would: the installed `remediate` command, a config file, and `remediate serve`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx2 as httpx
import pytest

REMEDIATE = shutil.which("remediate") or str(Path(sys.executable).parent / "remediate")

CONFIG = """\
playbooks:
  commands:
    - name: touch-marker
      description: Leave a marker file
      parameters:
        name: {type: string, pattern: "^[a-z]+$", required: true}
      steps:
        - name: touch
          argv: ["touch", "MARKERS/{name}"]
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environment = dict(os.environ)
    environment.update(
        XDG_STATE_HOME=str(tmp_path / "state"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        HOME=str(tmp_path / "home"),
    )
    environment.pop("REMEDIATE_CONFIG", None)
    return environment


def cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [REMEDIATE, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


@contextmanager
def serving(env: dict[str, str], cwd: Path, port: int) -> Iterator[str]:
    log = cwd / f"serve-{port}.log"
    with log.open("a") as output:
        process = subprocess.Popen(
            [REMEDIATE, "serve", "--port", str(port)],
            env=env,
            cwd=cwd,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):  # bounded wait for the first answer
            if process.poll() is not None:
                pytest.fail(f"serve exited {process.returncode}: {log.read_text()}")
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            pytest.fail("serve did not answer /health")
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def test_a_command_playbook_run_shows_in_history_audit_and_metrics_across_restarts(
    tmp_path: Path, env: dict[str, str]
) -> None:
    workdir = tmp_path / "work"
    (workdir / "MARKERS").mkdir(parents=True)
    (workdir / "remediate.yml").write_text(CONFIG.replace("MARKERS", str(workdir / "MARKERS")))

    checked = cli(env, workdir, "config", "check")
    assert checked.returncode == 0, checked.stderr
    ran = cli(env, workdir, "run", "touch-marker", "-p", "name=alpha", "--format", "json")
    assert ran.returncode == 0, ran.stderr
    outcome = json.loads(ran.stdout)
    assert outcome["status"] == "success"
    assert (workdir / "MARKERS" / "alpha").exists()

    history = json.loads(cli(env, workdir, "history", "--format", "json").stdout)
    assert [(row["id"], row["status"]) for row in history] == [(outcome["decision_id"], "success")]

    audit = tmp_path / "state" / "remediate" / "decisions.jsonl"
    [line] = [json.loads(text) for text in audit.read_text().splitlines()]
    assert (line["id"], line["playbook"], line["success"]) == (
        outcome["decision_id"],
        "touch-marker",
        True,
    )
    textfile = tmp_path / "state" / "remediate" / "remediate.prom"
    expected = 'remediation_playbook_executions_total{playbook="touch-marker",status="success"} 1.0'
    assert expected in textfile.read_text()

    port = free_port()
    for _restart in range(2):
        with serving(env, workdir, port) as base:
            metrics = httpx.get(f"{base}/metrics", timeout=5).text
            assert expected in metrics
            assert httpx.get(f"{base}/health", timeout=5).json()["store"] == "ok"


def test_serve_runs_on_built_in_defaults_with_no_config(
    tmp_path: Path, env: dict[str, str]
) -> None:
    workdir = tmp_path / "empty"
    workdir.mkdir()
    with serving(env, workdir, free_port()) as base:
        health = httpx.get(f"{base}/health", timeout=5)
        assert health.json()["store"] == "ok"
        assert (health.json()["paused"], health.json()["queue_depth"]) == (False, 0)
        assert "remediation_paused 0.0" in httpx.get(f"{base}/metrics", timeout=5).text
    assert (tmp_path / "state" / "remediate" / "remediate.db").exists()


def test_help_is_served_without_importing_heavy_modules(
    env: dict[str, str], tmp_path: Path
) -> None:
    probe = (
        "import sys; from remediate.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('sqlalchemy', 'starlette', 'uvicorn', 'prometheus_client', "
        "'pydantic', 'alembic', 'psycopg', 'rich.table') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
    )
    assert "HEAVY []" in result.stdout, result.stdout + result.stderr
