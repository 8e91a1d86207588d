"""Generated deployment files pass the real tools: amtool and systemd-analyze."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from remediate.cli import main
from tests.helpers import require_binary


@pytest.mark.integration
def test_the_alertmanager_export_passes_amtool(
    tmp_path: Path,
    state_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    amtool = require_binary("amtool", "prometheus-alertmanager")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "alertmanager.yml"
    assert main(["export", "alertmanager", "--token-file", "/etc/token", "--out", str(out)]) == 0
    text = out.read_text()
    assert "continue: true" in text and "send_resolved: true" in text
    assert "SystemDiskSpaceCritical" in text and "MemoryPressureHigh" not in text
    checked = subprocess.run([amtool, "check-config", str(out)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


@pytest.mark.integration
def test_the_systemd_export_passes_systemd_analyze_verify(
    tmp_path: Path,
    state_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    analyze = require_binary("systemd-analyze", "systemd")
    monkeypatch.chdir(tmp_path)
    assert main(["export", "systemd", "--out", str(tmp_path)]) == 0
    unit = tmp_path / "remediate.service"
    text = unit.read_text()
    for line in (
        "MemoryMax=128M",
        "CPUQuota=10%",
        "NoNewPrivileges=true",
        "PrivateTmp=true",
        "Restart=on-failure",
    ):
        assert line in text
    checked = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "remediate.service" not in checked.stderr  # no complaint about our unit


@pytest.mark.integration
def test_the_rules_export_passes_promtool_and_grafana_writes_two_dashboards(
    tmp_path: Path,
    state_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json

    promtool = require_binary("promtool", "prometheus")
    monkeypatch.chdir(tmp_path)
    assert main(["export", "rules", "--out", str(tmp_path)]) == 0
    checked = subprocess.run(
        [promtool, "check", "rules", str(tmp_path / "remediate.rules.yml")],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert main(["export", "grafana", "--out", str(tmp_path)]) == 0
    titles = sorted(
        json.loads(path.read_text())["title"] for path in tmp_path.glob("remediation-*.json")
    )
    assert titles == ["Remediation Effectiveness", "Remediation Intelligence"]
