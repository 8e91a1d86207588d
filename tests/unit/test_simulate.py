"""`remediate simulate`: the seed's timelines replayed through routing and the gate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from remediate.cli import main
from remediate.errors import UsageError
from remediate.webhook.simulate import read_steps

EXAMPLES = Path(__file__).parents[2] / "docs" / "examples"

CONFIG = """\
state: {{directory: {state}}}
services:
  - {{name: web, container: web}}
  - {{name: crowdsec, container: crowdsec}}
playbooks:
  commands:
    - name: disk-cleanup-sim
      steps: [{{name: x, argv: ["false"]}}]
    - name: restart-sim
      parameters: {{service: {{type: string, pattern: "^[a-z]+$", required: true}}}}
      steps: [{{name: x, argv: ["false"]}}]
routes:
  - {{alert: SystemDiskSpaceCritical, playbook: disk-cleanup-sim, confidence: 95}}
  - {{alert: ContainerNotRunning, playbook: restart-sim, confidence: 90,
      parameters: {{service: "{{{{.Labels.name}}}}"}}}}
  - {{alert: CrowdSecDown, playbook: restart-sim, confidence: 95,
      parameters: {{service: crowdsec}}}}
"""


@pytest.fixture
def config(tmp_path: Path, state_dir: Path) -> Path:
    path = tmp_path / "remediate.yml"
    path.write_text(CONFIG.format(state=tmp_path / "real-state"))
    return path


def simulate(capsys: pytest.CaptureFixture[str], config: Path, example: str) -> list[Any]:
    code = main(["-c", str(config), "simulate", str(EXAMPLES / example), "--format", "json"])
    out = capsys.readouterr().out
    assert code == 0
    return list(json.loads(out))


def test_the_idempotency_timeline(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = simulate(capsys, config, "idempotency.jsonl")
    assert [(row["at"][11:19], row["action"]) for row in rows] == [
        ("10:00:00", "executed"),
        ("10:02:30", "blocked"),
        ("10:06:00", "blocked"),  # the 15 min cooldown still holds, as the seed's numbers say
    ]
    assert "idempotency" in rows[1]["reason"]
    assert "cooldown" in rows[2]["reason"]


def test_the_rate_limit_timeline(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = simulate(capsys, config, "rate-limit.jsonl")
    assert [row["action"] for row in rows] == [
        "executed",
        "blocked",
        "executed",
        "executed",
        "blocked",
    ]
    assert "cooldown" in rows[1]["reason"]
    assert "per-alert limit" in rows[4]["reason"]


def test_the_circuit_breaker_timeline(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = simulate(capsys, config, "circuit-breaker.jsonl")
    assert [(row["action"], row["result"]) for row in rows] == [
        ("executed", "failure"),
        ("executed", "failure"),
        ("executed", "failure"),
        ("blocked", None),
        ("executed", "failure"),
    ]
    assert "circuit open" in rows[3]["reason"]


def test_simulation_never_touches_the_real_store(
    config: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    simulate(capsys, config, "rate-limit.jsonl")
    assert not (tmp_path / "real-state").exists()


def test_a_bad_line_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"at": "2025-12-24T10:00:00Z", "payload": {"alerts": []}}\n{"at": "x"}\n')
    with pytest.raises(UsageError) as raised:
        read_steps(path)
    assert f"{path}:2: payload" in raised.value.message
