"""`remediate serve` on SQLite starts, answers /health and decides alerts on the driver
alone: SQLAlchemy (about 100 ms and 15 MB) is imported only once something needs it,
such as the first admitted execution."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx2 as httpx

from tests.fixtures_monitoring import free_port, start_serve, stop_serve


def _sqlalchemy_mapped(pid: int) -> bool:
    """SQLAlchemy's compiled extensions are mapped into the process once it is imported."""
    return "/sqlalchemy/" in Path(f"/proc/{pid}/maps").read_text()


def _alert(name: str, marker: str) -> dict[str, object]:
    return {"alerts": [{"status": "firing", "labels": {"alertname": name, "name": marker}}]}


def test_serve_decides_on_sqlite_without_sqlalchemy_until_an_admission(tmp_path: Path) -> None:
    config = tmp_path / "remediate.yml"
    config.write_text(
        f"""
state: {{directory: {tmp_path / "state"}}}
metrics: {{enabled_textfile: false}}  # its first write, a second after start, needs SQLAlchemy
playbooks:
  commands:
    - name: touch-marker
      parameters: {{name: {{type: string, pattern: "^m[0-9]+$", required: true}}}}
      target_parameter: name
      steps:
        - {{name: touch, argv: ["sh", "-c", "touch {tmp_path}/$0", "{{name}}"]}}
routes:
  - {{alert: Footprint, playbook: touch-marker, confidence: 95,
      parameters: {{name: "{{{{.Labels.name}}}}"}}}}
"""
    )
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "REMEDIATE_NO_OPTIMIZE"}
    serve = start_serve(config, port, tmp_path / "serve.log", env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        assert httpx.get(f"{base}/health", timeout=10).json()["store"] == "ok"
        unrouted = httpx.post(f"{base}/webhook", json=_alert("NoRoute", "m1"), timeout=10)
        assert unrouted.json()["results"][0]["action"] == "recorded"
        bad = httpx.post(f"{base}/webhook", json=_alert("Footprint", "x; rm"), timeout=10)
        assert bad.json()["results"][0]["action"] == "blocked"  # the pattern refused it
        assert not _sqlalchemy_mapped(serve.pid)

        admitted = httpx.post(f"{base}/webhook?wait=30", json=_alert("Footprint", "m2"), timeout=40)
        result = admitted.json()["results"][0]
        assert (result["action"], result["result"]) == ("executed", "success")
        assert (tmp_path / "m2").exists()
        assert _sqlalchemy_mapped(serve.pid)  # the check above can see it
        history = httpx.get(f"{base}/decisions", timeout=10).json()
        assert [row["action"] for row in history] == ["execute", "block", "record"]
    finally:
        stop_serve(serve)


def test_the_textfile_is_first_written_in_the_background(tmp_path: Path) -> None:
    """Over a long history the first count takes seconds: serve answers meanwhile."""
    config = tmp_path / "remediate.yml"
    config.write_text(f"state: {{directory: {tmp_path / 'state'}}}\n")
    textfile = tmp_path / "state" / "remediate.prom"
    serve = start_serve(config, free_port(), tmp_path / "serve.log")
    try:
        for _ in range(200):  # bounded: about 10 s
            if textfile.exists():
                break
            time.sleep(0.05)
        assert "remediation_" in textfile.read_text()
    finally:
        stop_serve(serve)
