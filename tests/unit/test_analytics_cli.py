"""`remediate report ...` as a user calls it: config file, store, table and JSON output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from remediate.analytics.cli import report_app
from remediate.analytics.effectiveness import effectiveness
from remediate.analytics.synthetic import fill
from remediate.analytics.window import Window
from remediate.config.models import Analytics
from remediate.errors import UsageError
from remediate.store import Store


@pytest.fixture
def configured(
    store: Store, store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Store:
    fill(store, "2025-12", executions=200, seed=9)
    config = tmp_path / "remediate.yml"
    config.write_text(
        f"state:\n  url: {store_url}\n  directory: {tmp_path / 'state'}\n"
        "analytics:\n  manual_minutes:\n    disk-cleanup: 12\n"
    )
    monkeypatch.setenv("REMEDIATE_CONFIG", str(config))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    return store


def invoke(*args: str) -> object:
    return CliRunner().invoke(report_app, list(args), catch_exceptions=True)


def test_effectiveness_json_is_the_report_with_the_configured_baseline(configured: Store) -> None:
    result = invoke("effectiveness", "--month", "2025-12", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    direct = effectiveness(
        configured, Analytics(manual_minutes={"disk-cleanup": 12}), Window.month("2025-12")
    )
    assert data == json.loads(json.dumps(direct.as_dict(), default=str))
    disk = next(row for row in data["playbooks"] if row["playbook"] == "disk-cleanup")
    assert disk["manual_minutes"] == 12


@pytest.mark.parametrize("command", ["trends", "roi", "recommendations"])
def test_each_report_prints_json_for_the_month(configured: Store, command: str) -> None:
    result = invoke(command, "--month", "2025-12", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["window"] == {
        "start": "2025-12-01T00:00:00Z",
        "end": "2026-01-01T00:00:00Z",
        "days": 31.0,
    }


def test_the_tables_name_the_playbooks(configured: Store) -> None:
    result = invoke("effectiveness", "--month", "2025-12")
    assert result.exit_code == 0, result.output
    assert "disk-cleanup" in result.stdout
    assert "/100" in result.stdout
    result = invoke("roi", "--month", "2025-12")
    assert "incidents prevented:" in result.stdout


def test_monthly_prints_markdown_or_writes_both_files(configured: Store, tmp_path: Path) -> None:
    printed = invoke("monthly", "--month", "2025-12")
    assert printed.exit_code == 0, printed.output
    assert printed.stdout.startswith("# Remediation Report - December 2025")
    written = invoke("monthly", "--month", "2025-12", "--out", str(tmp_path / "out"))
    assert written.exit_code == 0, written.output
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [
        "remediation-monthly-202512.html",
        "remediation-monthly-202512.md",
    ]
    as_json = json.loads(invoke("monthly", "--month", "2025-12", "--format", "json").stdout)
    assert as_json["month"] == "2025-12"
    assert as_json["summary"]["executions"] > 0


@pytest.mark.parametrize(
    "args",
    [("--last", "30d", "--month", "2025-12"), ("--last", "30x"), ("--month", "2025-13")],
    ids=["both", "bad-last", "bad-month"],
)
def test_a_bad_window_is_a_usage_error_before_the_store_is_read(
    args: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REMEDIATE_CONFIG", str(tmp_path / "missing.yml"))
    result = invoke("trends", *args)
    assert isinstance(result.exception, UsageError)
    assert result.exception.exit_code == 2
