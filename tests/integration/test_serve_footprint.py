"""`remediate serve` on SQLite starts, answers /health and decides alerts on the driver
alone: SQLAlchemy (about 100 ms of start-up) is imported in the background once the
server is up, or by whatever needs it first (a decision's history, a report). On
PostgreSQL the same runs on psycopg alone."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.fixtures_monitoring import free_port, start_serve, stop_serve

CONFIG = """
state: {{directory: {state}}}
playbooks:
  commands:
    - name: touch-marker
      parameters: {{name: {{type: string, pattern: "^m[0-9]+$", required: true}}}}
      target_parameter: name
      steps:
        - {{name: touch, argv: ["sh", "-c", "touch {markers}/$0", "{{name}}"]}}
routes:
  - {{alert: Footprint, playbook: touch-marker, confidence: 95,
      parameters: {{name: "{{{{.Labels.name}}}}"}}}}
"""

# What `serve` does before and while answering, in a fresh interpreter.
SERVING = """
import sys
from pathlib import Path
from remediate.entry import _settings
from remediate.runtime import Runtime
from remediate.pipeline.worker import Worker
from remediate.webhook.app import _health, create_app
from remediate.webhook.models import WebhookPayload
from remediate.webhook.receiver import intents

settings, path = _settings(Path(sys.argv[1]))
runtime = Runtime.build(settings, config_path=path)
runtime.pipeline.recover()
worker = Worker(runtime.pipeline)
create_app(runtime, worker=worker)

def decide(name, marker):
    payload = WebhookPayload.model_validate(
        {"alerts": [{"status": "firing", "labels": {"alertname": name, "name": marker}}]}
    )
    decisions, follow_up = runtime.pipeline.decide_committed(intents(runtime.pipeline, payload))
    follow_up()
    return decisions[0].action

loaded = lambda: "sqlalchemy" in sys.modules
print(_health(runtime, worker)["store"], loaded())
print(decide("NoRoute", "m1"), decide("Footprint", "x; rm"), runtime.store.queued(), loaded())
print(decide("Footprint", "m2"), runtime.store.queued(), loaded())
report = runtime.pipeline.execute(runtime.store.queued()[0])
textfile = settings.textfile_path().read_text()
print(report.status, 'playbook="touch-marker",status="success"' in textfile, loaded())
from remediate.metrics import exposition
print('remediation_gate_decisions_total' in exposition(runtime.metrics).decode(), loaded())
from remediate.autonomous.sampler import Sampler
taken = Sampler(settings, runtime.store, clock=runtime.clock).sample_once()
print(taken.sampled > 0, loaded())
print([row["action"] for row in runtime.store.history()])
"""


def _config(tmp_path: Path, url: str | None = None) -> Path:
    config = tmp_path / "remediate.yml"
    state = f"{tmp_path / 'state'}, url: '{url}'" if url else tmp_path / "state"
    config.write_text(CONFIG.format(state=state, markers=tmp_path))
    return config


def test_start_health_and_refusals_need_no_sqlalchemy(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SERVING, str(_config(tmp_path))],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.splitlines()
    assert out[0] == "ok False"  # a new store created, recovered and healthy
    assert out[1] == "record block [] False"  # no route; a refused parameter
    assert out[2] == "execute [1] False"  # an admission, on the driver too
    assert out[3] == "success True False"  # the run, its record and the textfile
    assert out[4] == "True False"  # a scrape
    assert out[5] == "True False"  # a round of the sampler
    assert out[6] == "['execute', 'block', 'record']"


@pytest.mark.integration
def test_start_and_health_on_postgresql_need_no_sqlalchemy(
    tmp_path: Path, postgres_database: str
) -> None:
    """A new PostgreSQL database gets its schema, the interrupted sweep, /health, refusals
    and an admission run on psycopg alone."""
    out = subprocess.run(
        [sys.executable, "-c", SERVING, str(_config(tmp_path, postgres_database))],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.splitlines()
    assert out[0] == "ok False"
    assert out[1] == "record block [] False"
    assert out[2] == "execute [1] False"
    assert out[3] == "success True False"
    assert out[4] == "True False"
    assert out[5] == "True False"
    assert out[6] == "['execute', 'block', 'record']"


def _sqlalchemy_mapped(pid: int) -> bool:
    """SQLAlchemy's compiled extensions are mapped into the process once it is imported."""
    return "/sqlalchemy/" in Path(f"/proc/{pid}/maps").read_text()


def test_serve_writes_the_textfile_then_decides_runs_and_is_scraped_without_sqlalchemy(
    tmp_path: Path,
) -> None:
    """The real server: the textfile appears after the warm-up, an alert is admitted and
    runs to success, /metrics answers, and SQLAlchemy is never loaded (no route sends
    alerts to a chain, so the warm-up leaves it out too)."""
    textfile = tmp_path / "state" / "remediate.prom"
    port = free_port()
    serve = start_serve(_config(tmp_path), port, tmp_path / "serve.log")
    try:
        for _ in range(200):  # bounded: about 10 s
            if textfile.exists():
                break
            time.sleep(0.05)
        assert "remediation_" in textfile.read_text()
        body = {
            "alerts": [{"status": "firing", "labels": {"alertname": "Footprint", "name": "m3"}}]
        }
        answer = httpx.post(f"http://127.0.0.1:{port}/webhook?wait=30", json=body, timeout=40)
        assert answer.json()["results"][0]["result"] == "success"
        assert (tmp_path / "m3").exists()
        scrape = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        assert (
            'remediation_playbook_executions_total{playbook="touch-marker",status="success"} 1.0'
            in scrape
        )
        assert not _sqlalchemy_mapped(serve.pid)
        # Something that needs it still gets it: the decision history.
        assert httpx.get(f"http://127.0.0.1:{port}/decisions", timeout=10).status_code == 200
        assert _sqlalchemy_mapped(serve.pid)
    finally:
        stop_serve(serve)


def test_serve_on_an_unreachable_store_says_so_and_exits(tmp_path: Path) -> None:
    """The store opens in a thread of its own while serve imports the server: a store
    that cannot be reached still ends serve with the store's error, not a traceback."""
    config = tmp_path / "remediate.yml"
    config.write_text(
        f"state: {{directory: {tmp_path / 'state'}, url: 'postgresql://postgres@127.0.0.1:1/x'}}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "remediate", "-c", str(config), "serve", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "the store failed while reading the schema version" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_modules_serve_imports_ahead_are_there_and_serve_needs_them(tmp_path: Path) -> None:
    """serve imports the modules uvicorn, anyio and /health would import anyway while its
    store opens (on a new PostgreSQL database, while the server creates the schema). A
    module renamed by a new release would make that a silent no-op: each must import,
    and a server that imported none of them ahead still loads each by its first answer."""
    import importlib

    from remediate.server import SERVING_MODULES

    for name in SERVING_MODULES:
        importlib.import_module(name)
    port = free_port()
    code = f"""
import os, signal, sys, threading, time, urllib.request
from pathlib import Path
import remediate.server as server
from remediate.entry import _settings

server._import_ahead = lambda: None

def ask():
    for _ in range(400):
        try:
            urllib.request.urlopen("http://127.0.0.1:{port}/health", timeout=1)
            break
        except OSError:
            time.sleep(0.05)
    print("missing", [m for m in {SERVING_MODULES!r} if m not in sys.modules], flush=True)
    os.kill(os.getpid(), signal.SIGINT)

threading.Thread(target=ask, daemon=True).start()
settings, path = _settings(Path(sys.argv[1]))
server.serve(settings, config_path=path, port={port})
"""
    done = subprocess.run(
        [sys.executable, "-c", code, str(_config(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "missing []" in done.stdout, done.stdout + done.stderr
