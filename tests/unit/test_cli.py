"""The CLI in-process through `main(argv)`: output, JSON and exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from remediate.cli import main

CONFIG = """\
state:
  directory: {state}
playbooks:
  commands:
    - name: greet
      description: Say hello to a service
      risk: low
      parameters:
        service: {{type: string, pattern: "^[a-z0-9-]+$", required: true}}
      target_parameter: service
      steps:
        - name: hello
          argv: ["echo", "hello", "{{service}}"]
    - name: broken
      steps:
        - name: fail
          argv: ["sh", "-c", "echo nope >&2; exit 1"]
    - name: careful
      requires_confirmation: true
      steps:
        - name: ok
          argv: ["true"]
"""


@pytest.fixture
def config(tmp_path: Path, state_dir: Path) -> Path:
    path = tmp_path / "remediate.yml"
    path.write_text(CONFIG.format(state=tmp_path / "state"))
    return path


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_run_records_a_decision_that_history_shows(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "-c", str(config), "run", "greet", "-p", "service=web")
    assert code == 0
    assert "success" in out and "greet" in out
    code, out, _ = run_cli(capsys, "-c", str(config), "history", "--format", "json")
    assert code == 0
    [row] = json.loads(out)
    assert (row["playbook"], row["status"], row["stdout"]) == ("greet", "success", "hello web\n")


def test_run_json_output_and_exit_1_on_failure(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "-c", str(config), "run", "broken", "--format", "json")
    assert code == 1
    data: dict[str, Any] = json.loads(out)
    assert data["status"] == "failure"
    assert "broken failure" in err


def test_an_unknown_playbook_is_exit_2_with_close_matches(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "-c", str(config), "run", "gret")
    assert code == 2
    assert "unknown playbook 'gret'" in err and "did you mean: greet" in err


def test_a_bad_parameter_is_exit_2_naming_it(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "-c", str(config), "run", "greet", "-p", "service=a;b")
    assert code == 2
    assert "parameter 'service'" in err
    code, _, err = run_cli(capsys, "-c", str(config), "run", "greet", "-p", "service")
    assert code == 2
    assert "KEY=VALUE" in err


def test_confirmation_is_exit_3_until_yes(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "-c", str(config), "run", "careful")
    assert code == 3
    assert "requires confirmation" in err and "--yes" in err
    code, _, _ = run_cli(capsys, "-c", str(config), "run", "careful", "--yes")
    assert code == 0


def test_pause_blocks_runs_with_exit_3_and_force_still_works(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(capsys, "-c", str(config), "pause", "--reason", "upgrade")[0] == 0
    code, _, err = run_cli(capsys, "-c", str(config), "run", "greet", "-p", "service=web")
    assert code == 3 and "paused: upgrade" in err
    code, out, _ = run_cli(capsys, "-c", str(config), "status", "--format", "json")
    assert json.loads(out)["paused"]["reason"] == "upgrade"
    code, _, _ = run_cli(capsys, "-c", str(config), "run", "greet", "-p", "service=db", "--force")
    assert code == 0
    assert run_cli(capsys, "-c", str(config), "resume")[0] == 0
    code, out, _ = run_cli(capsys, "-c", str(config), "status", "--format", "json")
    assert json.loads(out)["paused"] is False


def test_dry_run_prints_the_exact_argv_and_records_nothing(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(
        capsys,
        "-c",
        str(config),
        "run",
        "greet",
        "-p",
        "service=web",
        "--dry-run",
        "--format",
        "json",
    )
    assert code == 0
    data = json.loads(out)
    assert data["plan"] == [{"description": "hello", "argv": ["echo", "hello", "web"]}]
    assert data["gate"]["action"] == "execute"
    code, out, _ = run_cli(
        capsys, "-c", str(config), "run", "greet", "-p", "service=web", "--dry-run"
    )
    assert "echo hello web" in out and "nothing was executed" in out
    _, out, _ = run_cli(capsys, "-c", str(config), "history", "--format", "json")
    assert json.loads(out) == []


def test_playbooks_lists_risk_and_parameters(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "-c", str(config), "playbooks", "--format", "json")
    assert code == 0
    greet = next(row for row in json.loads(out) if row["name"] == "greet")
    assert greet["risk"] == "low"
    assert greet["parameters"]["service"]["required"] is True
    code, out, _ = run_cli(capsys, "-c", str(config), "playbooks")
    assert "greet" in out and "service:string" in out


def test_status_shows_breakers(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_cli(capsys, "-c", str(config), "run", "broken")
    code, out, _ = run_cli(capsys, "-c", str(config), "status", "--format", "json")
    assert code == 0
    broken = next(row for row in json.loads(out)["playbooks"] if row["playbook"] == "broken")
    assert (broken["breaker"], broken["consecutive_failures"]) == ("closed", 1)


def test_config_check_names_file_line_and_field(
    tmp_path: Path, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "safety:\n  confidence_threshold: 90\n  rate_limits:\n    cooldown_minutes: soon\n"
    )
    code, _, err = run_cli(capsys, "-c", str(bad), "config", "check")
    assert code == 2
    assert f"{bad}:4" in err and "safety.rate_limits.cooldown_minutes" in err


def test_config_check_passes_on_defaults_and_warns_about_missing_playbooks(
    state_dir: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(capsys, "config", "check", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["file"] is None and data["routes"] == 9


def test_config_init_writes_a_file_that_checks(
    tmp_path: Path, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_path = tmp_path / "new.yml"
    assert run_cli(capsys, "config", "init", "--out", str(out_path))[0] == 0
    assert run_cli(capsys, "config", "init", "--out", str(out_path))[0] == 2  # exists
    code, _, _ = run_cli(capsys, "-c", str(out_path), "config", "check")
    assert code == 0


def test_config_schema_is_json_schema(state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "config", "schema")
    assert code == 0
    assert "safety" in json.loads(out)["properties"]


def test_serve_refuses_a_public_bind_without_a_token(
    state_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("REMEDIATE_WEBHOOK_TOKEN", raising=False)
    code, _, err = run_cli(capsys, "serve", "--bind", "0.0.0.0")
    assert code == 2
    assert "without a webhook token" in err


def test_a_malformed_duration_is_a_usage_error(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "-c", str(config), "history", "--last", "soon")
    assert code == 2 and "not a duration" in err


def test_a_limit_out_of_range_is_a_usage_error(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A limit past PostgreSQL's 32-bit LIMIT was a store error there, and past 64 bits
    a traceback on SQLite."""
    for command in (["history"], ["chain", "status"]):
        for limit in ("0", str(2**31), str(2**64)):
            code, _, err = run_cli(capsys, "-c", str(config), *command, "--limit", limit)
            assert code == 2, (command, limit, err)
            assert "--limit" in err


def test_pending_approve_and_reject_from_the_cli(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from remediate.config.loader import load_settings
    from remediate.pipeline.request import Alert, Request
    from remediate.runtime import Runtime

    runtime = Runtime.build(load_settings(config))
    first = runtime.pipeline.decide(
        Request("greet", {"service": "web"}, source="webhook", confidence=70, alert=Alert("A"))
    )
    second = runtime.pipeline.decide(
        Request("greet", {"service": "db"}, source="webhook", confidence=70, alert=Alert("B"))
    )
    runtime.close()
    code, out, _ = run_cli(capsys, "-c", str(config), "pending", "--format", "json")
    assert code == 0
    assert [row["id"] for row in json.loads(out)] == [first.approval_id, second.approval_id]
    code, out, _ = run_cli(
        capsys, "-c", str(config), "approve", str(first.approval_id), "--format", "json"
    )
    assert code == 0
    assert json.loads(out)["status"] == "success"
    code, _, _ = run_cli(capsys, "-c", str(config), "reject", str(second.approval_id))
    assert code == 0
    code, _, err = run_cli(capsys, "-c", str(config), "approve", str(second.approval_id))
    assert code == 3 and "already rejected" in err
    code, out, _ = run_cli(capsys, "-c", str(config), "pending", "--format", "json")
    assert json.loads(out) == []
