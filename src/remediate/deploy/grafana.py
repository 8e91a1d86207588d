"""`remediate export grafana`: the "Remediation Effectiveness" and "Remediation Intelligence"
dashboards, for Grafana 9 or newer, with a `datasource` variable so they import anywhere.

Every expression names only metric families remediate emits (a test checks them
against a live /metrics).

    for path in render(Path("dashboards")):
        print(path)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
PLAYBOOK = 'playbook=~"$playbook"'
COUNTED = 'status=~"success|failure|timeout"'
EXECUTIONS = "remediation_playbook_executions_total"


def _target(expr: str, legend: str = "", ref: str = "A") -> dict[str, Any]:
    return {"refId": ref, "expr": expr, "legendFormat": legend, "datasource": DATASOURCE}


class _Layout:
    """Places panels left to right on Grafana's 24-column grid, wrapping to new rows."""

    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []
        self.x = self.y = self.row_height = 0

    def add(
        self,
        kind: str,
        title: str,
        targets: list[dict[str, Any]],
        *,
        width: int = 12,
        height: int = 8,
        unit: str = "short",
        description: str = "",
        **extra: Any,
    ) -> None:
        if self.x + width > 24:
            self.x, self.y, self.row_height = 0, self.y + self.row_height, 0
        self.panels.append(
            {
                "id": len(self.panels) + 1,
                "type": kind,
                "title": title,
                "description": description,
                "datasource": DATASOURCE,
                "gridPos": {"h": height, "w": width, "x": self.x, "y": self.y},
                "targets": targets,
                "fieldConfig": {
                    "defaults": {"unit": unit, **extra.pop("defaults", {})},
                    "overrides": [],
                },
                "options": extra.pop("options", {}),
                **extra,
            }
        )
        self.x += width
        self.row_height = max(self.row_height, height)


def _dashboard(
    uid: str, title: str, description: str, panels: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["remediate"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "1m",
        "time": {"from": "now-30d", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                    "regex": "",
                    "options": [],
                },
                {
                    "name": "playbook",
                    "label": "Playbook",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "definition": f"label_values({EXECUTIONS}, playbook)",
                    "query": {
                        "query": f"label_values({EXECUTIONS}, playbook)",
                        "refId": "PlaybookVariable",
                    },
                    "includeAll": True,
                    "allValue": ".*",
                    "multi": True,
                    "current": {"text": "All", "value": "$__all"},
                    "refresh": 2,
                    "sort": 1,
                    "hide": 0,
                    "options": [],
                },
            ]
        },
        "annotations": {"list": []},
        "panels": panels,
    }


def effectiveness() -> dict[str, Any]:
    """Execution history, success, duration and impact: the seed's Phase 1 dashboard."""
    layout = _Layout()
    range_total = f"sum(increase({EXECUTIONS}{{{PLAYBOOK},{COUNTED}}}[$__range]))"
    layout.add(
        "stat",
        "Executions",
        [_target(f"sum(increase({EXECUTIONS}{{{PLAYBOOK}}}[$__range]))")],
        width=6,
        height=4,
        description="Finished executions in the time range.",
    )
    layout.add(
        "stat",
        "Success rate",
        [
            _target(
                f'sum(increase({EXECUTIONS}{{{PLAYBOOK},status="success"}}[$__range])) '
                f"/ clamp_min({range_total}, 1)"
            )
        ],
        width=6,
        height=4,
        unit="percentunit",
        defaults={"min": 0, "max": 1},
    )
    layout.add(
        "stat",
        "Disk reclaimed (latest runs)",
        [_target(f"sum(remediation_disk_space_reclaimed_bytes{{{PLAYBOOK}}})")],
        width=6,
        height=4,
        unit="bytes",
    )
    layout.add(
        "stat",
        "Services restarted",
        [_target(f"sum(increase(remediation_services_restarted_total{{{PLAYBOOK}}}[$__range]))")],
        width=6,
        height=4,
    )
    layout.add(
        "timeseries",
        "Executions per hour by status",
        [
            _target(
                f"sum by (playbook, status) (increase({EXECUTIONS}{{{PLAYBOOK}}}[1h]))",
                "{{playbook}} {{status}}",
            )
        ],
    )
    layout.add(
        "timeseries",
        "Success rate by playbook",
        [
            _target(
                f'sum by (playbook) (increase({EXECUTIONS}{{{PLAYBOOK},status="success"}}[6h])) '
                f"/ sum by (playbook) (increase({EXECUTIONS}{{{PLAYBOOK},{COUNTED}}}[6h]))",
                "{{playbook}}",
            )
        ],
        unit="percentunit",
        defaults={"min": 0, "max": 1},
    )
    layout.add(
        "timeseries",
        "Execution time (p95 and mean)",
        [
            _target(
                "histogram_quantile(0.95, sum by (le, playbook) "
                f"(rate(remediation_playbook_duration_seconds_bucket{{{PLAYBOOK}}}[$__rate_interval])))",
                "p95 {{playbook}}",
            ),
            _target(
                "sum by (playbook) (rate(remediation_playbook_duration_seconds_sum"
                f"{{{PLAYBOOK}}}[$__rate_interval])) / sum by (playbook) "
                f"(rate(remediation_playbook_duration_seconds_count{{{PLAYBOOK}}}[$__rate_interval]))",
                "mean {{playbook}}",
                "B",
            ),
        ],
        unit="s",
    )
    layout.add(
        "bargauge",
        "Time since last success",
        [
            _target(
                f"time() - remediation_playbook_last_success_timestamp{{{PLAYBOOK}}}",
                "{{playbook}}",
            )
        ],
        unit="s",
        options={"orientation": "horizontal", "displayMode": "basic"},
    )
    layout.add(
        "timeseries",
        "Disk reclaimed by the latest run",
        [_target(f"remediation_disk_space_reclaimed_bytes{{{PLAYBOOK}}}", "{{playbook}}")],
        width=8,
        unit="bytes",
    )
    layout.add(
        "bargauge",
        "Services restarted by service",
        [
            _target(
                "sum by (service) "
                f"(increase(remediation_services_restarted_total{{{PLAYBOOK}}}[$__range]))",
                "{{service}}",
            )
        ],
        width=8,
        options={"orientation": "horizontal", "displayMode": "basic"},
    )
    layout.add(
        "bargauge",
        "OOM kills detected by service",
        [
            _target(
                "sum by (service) (increase(remediation_oom_events_detected_total[$__range]))",
                "{{service}}",
            )
        ],
        width=8,
        options={"orientation": "horizontal", "displayMode": "basic"},
    )
    layout.add(
        "timeseries",
        "Dead rows removed by the latest vacuum",
        [_target("remediation_database_vacuum_rows_removed", "{{database}}")],
    )
    layout.add(
        "timeseries",
        "Executions queued and running",
        [_target("sum by (status) (remediation_executions_in_progress)", "{{status}}")],
    )
    return _dashboard(
        "remediate-effectiveness",
        "Remediation Effectiveness",
        "What the playbooks did: executions, success, time and impact (remediate).",
        layout.panels,
    )


def intelligence() -> dict[str, Any]:
    """Forecasts, diagnoses and the gate's judgement: the seed's Phase 6 dashboard."""
    layout = _Layout()
    layout.add(
        "timeseries",
        "Prediction accuracy by resource",
        [_target("remediation_predictive_accuracy", "{{resource}}")],
        unit="percentunit",
        description="Mean score of scored forecasts; the autonomous loop acts only at 60% or more.",
        defaults={
            "min": 0,
            "max": 1,
            "thresholds": {
                "mode": "absolute",
                "steps": [{"color": "red", "value": None}, {"color": "green", "value": 0.6}],
            },
        },
    )
    layout.add(
        "bargauge",
        "Self-healing success rate by root cause",
        [_target("remediation_self_healing_success_rate", "{{root_cause}}")],
        unit="percentunit",
        defaults={"min": 0, "max": 1},
        options={"orientation": "horizontal", "displayMode": "gradient"},
    )
    layout.add(
        "timeseries",
        "Gate decisions per hour by action",
        [_target("sum by (action) (increase(remediation_gate_decisions_total[1h]))", "{{action}}")],
    )
    layout.add(
        "table",
        "Blocks and escalations by check",
        [
            _target(
                "sum by (action, check) "
                '(increase(remediation_gate_decisions_total{action=~"block|escalate"}[$__range]))',
                "{{action}} {{check}}",
            )
        ],
    )
    layout.add(
        "state-timeline",
        "Circuit breakers",
        [_target(f"remediation_circuit_breaker_open{{{PLAYBOOK}}}", "{{playbook}}")],
        defaults={
            "mappings": [
                {
                    "type": "value",
                    "options": {
                        "0": {"text": "closed", "color": "green"},
                        "0.5": {"text": "half-open", "color": "yellow"},
                        "1": {"text": "open", "color": "red"},
                    },
                }
            ]
        },
    )
    layout.add(
        "timeseries",
        "Consecutive failures",
        [
            _target(
                f"remediation_circuit_breaker_consecutive_failures{{{PLAYBOOK}}}", "{{playbook}}"
            )
        ],
    )
    layout.add(
        "stat", "Approvals pending", [_target("remediation_approvals_pending")], width=6, height=4
    )
    layout.add(
        "stat",
        "Paused",
        [_target("remediation_paused")],
        width=6,
        height=4,
        defaults={
            "mappings": [
                {"type": "value", "options": {"0": {"text": "active"}, "1": {"text": "PAUSED"}}}
            ]
        },
    )
    layout.add(
        "piechart",
        "Executions by trigger",
        [
            _target(
                "sum by (source) "
                '(increase(remediation_gate_decisions_total{action="execute"}[$__range]))',
                "{{source}}",
            )
        ],
    )
    return _dashboard(
        "remediate-intelligence",
        "Remediation Intelligence",
        "What remediate learns: forecast accuracy, root causes, the gate's decisions (remediate).",
        layout.panels,
    )


def dashboards() -> dict[str, str]:
    """File name -> dashboard JSON text."""
    return {
        "remediation-effectiveness.json": json.dumps(effectiveness(), indent=2) + "\n",
        "remediation-intelligence.json": json.dumps(intelligence(), indent=2) + "\n",
    }


def render(out_dir: Path) -> list[Path]:
    """Write both dashboards into `out_dir`; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in dashboards().items():
        path = out_dir / name
        path.write_text(text)
        paths.append(path)
    return paths
