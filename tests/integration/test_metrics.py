"""Metrics derived from the store: the seed's names, surviving restarts, passing promtool."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from remediate.clock import ManualClock
from remediate.metrics import exposition, registry_for, write_textfile
from remediate.pipeline.pipeline import Pipeline
from remediate.pipeline.request import Alert, Request
from remediate.playbooks.base import Context, Impact, Plan, Playbook, Result
from remediate.playbooks.registry import Registry
from remediate.store import Store
from tests.helpers import require_binary, settings_for

SEED_FAMILIES = {
    "remediation_playbook_executions",
    "remediation_playbook_duration_seconds",
    "remediation_playbook_last_success_timestamp",
    "remediation_disk_space_reclaimed_bytes",
    "remediation_services_restarted",
    "remediation_oom_events_detected",
    "remediation_predictive_accuracy",
    "remediation_self_healing_success_rate",
    "remediation_database_vacuum_rows_removed",
}


class Reclaims(Playbook):
    """A real in-process playbook that reports the impact figures the seed's metrics carry."""

    name = "reclaims"

    def plan(self, ctx: Context, params: Any) -> Plan:
        return Plan(())

    def execute(self, ctx: Context, plan: Plan, params: Any) -> Result:
        return Result(
            "success",
            "reclaimed",
            impacts=(
                Impact("bytes_reclaimed", 2048, "/"),
                Impact("bytes_reclaimed", 1024, "/var"),
                Impact("service_restarted", 1, "jellyfin"),
                Impact("oom_detected", 1, "jellyfin"),
                Impact("rows_removed", 500, "immich"),
            ),
            root_cause="oom_killed",
        )


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.fixture
def filled(tmp_path: Path, store: Store, store_url: str, clock: ManualClock) -> Pipeline:
    settings = settings_for(
        tmp_path,
        store_url,
        playbooks={"commands": [{"name": "broken", "steps": [{"name": "x", "argv": ["false"]}]}]},
    )
    registry = Registry.from_settings(settings)
    registry._playbooks["reclaims"] = Reclaims()
    pipeline = Pipeline(settings, store, registry, clock=clock)
    pipeline.run(Request("reclaims"))
    for _ in range(3):
        clock.advance(minutes=16)
        pipeline.run(Request("broken"))
    clock.advance(minutes=16)
    pipeline.run(Request("broken", source="webhook", alert=Alert("X"), confidence=95))
    return pipeline


def test_the_seed_metric_families_carry_real_figures(filled: Pipeline, clock: ManualClock) -> None:
    text = exposition(registry_for(filled.store, filled.settings, clock)).decode()
    names = {family.name for family in text_string_to_metric_families(text)}
    assert names >= SEED_FAMILIES - {"remediation_predictive_accuracy"}
    values = samples(text)
    assert (
        values[
            (
                "remediation_playbook_executions_total",
                (("playbook", "reclaims"), ("status", "success")),
            )
        ]
        == 1
    )
    assert (
        values[
            (
                "remediation_playbook_executions_total",
                (("playbook", "broken"), ("status", "failure")),
            )
        ]
        == 3
    )
    assert values[("remediation_disk_space_reclaimed_bytes", (("playbook", "reclaims"),))] == 3072
    assert (
        values[
            (
                "remediation_services_restarted_total",
                (("playbook", "reclaims"), ("service", "jellyfin")),
            )
        ]
        == 1
    )
    assert values[("remediation_oom_events_detected_total", (("service", "jellyfin"),))] == 1
    assert values[("remediation_database_vacuum_rows_removed", (("database", "immich"),))] == 500
    assert values[("remediation_self_healing_success_rate", (("root_cause", "oom_killed"),))] == 1
    assert values[("remediation_playbook_duration_seconds_count", (("playbook", "broken"),))] == 3
    assert values[("remediation_circuit_breaker_open", (("playbook", "broken"),))] == 1
    assert (
        values[
            (
                "remediation_gate_decisions_total",
                (("action", "block"), ("check", "circuit_breaker"), ("source", "webhook")),
            )
        ]
        == 1
    )
    assert values[("remediation_paused", ())] == 0


def test_counters_survive_a_restart(filled: Pipeline, store_url: str, clock: ManualClock) -> None:
    filled.store.close()
    reopened = Store.open(store_url)
    text = exposition(registry_for(reopened, filled.settings, clock)).decode()
    assert (
        samples(text)[
            (
                "remediation_playbook_executions_total",
                (("playbook", "broken"), ("status", "failure")),
            )
        ]
        == 3
    )
    reopened.close()


@pytest.mark.integration
def test_promtool_accepts_the_exposition_and_the_textfile(
    filled: Pipeline, clock: ManualClock, tmp_path: Path
) -> None:
    promtool = require_binary("promtool", "prometheus")
    registry = registry_for(filled.store, filled.settings, clock)
    textfile = tmp_path / "textfile" / "remediate.prom"
    write_textfile(registry, textfile)
    for text in (exposition(registry).decode(), textfile.read_text()):
        checked = subprocess.run(
            [promtool, "check", "metrics"], input=text, capture_output=True, text=True
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert checked.stdout + checked.stderr == ""
    assert "remediation_playbook_executions_total" in textfile.read_text()
