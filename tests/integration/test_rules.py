"""The exported alert rules pass `promtool check rules` and their unit tests, and the unit tests
catch a rule that drifts."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from remediate.config.models import Settings
from remediate.deploy.rules import render
from tests.helpers import require_binary

FIXTURE = Path(__file__).parent.parent / "fixtures" / "rules" / "remediate_test.yml"
ALERTS = {
    "RemediationPlaybookFailing",
    "RemediationCircuitBreakerOpen",
    "RemediationReceiverDown",
    "RemediationPredictionAccuracyLow",
    "RemediationLastSuccessStale",
}


def promtool_test(tmp_path: Path, rules_text: str) -> subprocess.CompletedProcess[str]:
    promtool = require_binary("promtool", "prometheus")
    (tmp_path / "remediate.rules.yml").write_text(rules_text)
    shutil.copy(FIXTURE, tmp_path / "remediate_test.yml")
    return subprocess.run(
        [promtool, "test", "rules", "remediate_test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_rules_name_the_five_alerts_and_the_unit_tests_cover_each() -> None:
    rules = yaml.safe_load(render(Settings()))["groups"][0]["rules"]
    assert {rule["alert"] for rule in rules} == ALERTS
    tested = {
        case["alertname"]
        for group in yaml.safe_load(FIXTURE.read_text())["tests"]
        for case in group["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert tested == ALERTS


@pytest.mark.integration
def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    promtool = require_binary("promtool", "prometheus")
    path = tmp_path / "remediate.rules.yml"
    path.write_text(render(Settings()))
    checked = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 5 rules found" in checked.stdout


@pytest.mark.integration
def test_the_promtool_unit_tests_pass(tmp_path: Path) -> None:
    tested = promtool_test(tmp_path, render(Settings()))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


@pytest.mark.integration
@pytest.mark.parametrize(
    ("settings", "job", "alert"),
    [
        (
            Settings(safety={"circuit_breaker": {"failure_threshold": 5}}),
            "remediate",
            "RemediationPlaybookFailing",
        ),
        (Settings(), "webhook", "RemediationReceiverDown"),
    ],
    ids=["breaker-threshold", "job-name"],
)
def test_the_unit_tests_fail_when_a_rule_changes(
    tmp_path: Path, settings: Settings, job: str, alert: str
) -> None:
    tested = promtool_test(tmp_path, render(settings, job=job))
    assert tested.returncode != 0
    assert f"alertname: {alert}" in tested.stdout + tested.stderr
