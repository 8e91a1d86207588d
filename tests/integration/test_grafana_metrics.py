"""The Grafana dashboards ask only for metrics remediate emits: every PromQL expression is
checked against the families a live `remediate serve` exposes after real playbook runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from remediate.deploy.grafana import dashboards, render
from tests.helpers import require_binary

REMEDIATE = shutil.which("remediate") or str(Path(sys.executable).parent / "remediate")
CONFIG = """\
playbooks:
  commands:
    - name: tidy
      description: Always succeeds
      steps:
        - {name: succeed, argv: ["true"]}
    - name: broken
      description: Always fails
      steps:
        - {name: fail, argv: ["false"]}
safety:
  rate_limits: {cooldown_minutes: 0, max_executions_per_hour: 100}
"""
# PromQL words that are not metric names: functions, aggregations, keywords, Grafana macros.
KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "inf",
    "nan",
    "le",
}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (a small, PromQL-aware scan)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals (label values, regexes)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # range selectors [5m], [$__range]
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\w+", " ", text)  # Grafana variables and macros
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?", text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in KEYWORDS:
            continue  # a function call or a keyword
        names.add(word)
    return names


def expressions(dashboard: dict[str, object]) -> list[str]:
    found = [
        target["expr"]
        for panel in dashboard["panels"]  # type: ignore[attr-defined]
        for target in panel["targets"]
    ]
    for variable in dashboard["templating"]["list"]:  # type: ignore[index]
        definition = variable.get("definition", "")
        match = re.fullmatch(r"label_values\((.+),\s*\w+\)", definition)
        if match:
            found.append(match.group(1))
    return found


def test_the_scan_finds_metric_names_and_skips_functions_and_labels() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, playbook) (rate(a_bucket{playbook=~"$playbook",'
        'x="rate(b)"}[$__rate_interval]))) / clamp_min(sum(increase(c_total[1h])), 1) '
        "and on(playbook) time() - d"
    )
    assert metric_names(expr) == {"a_bucket", "c_total", "d"}


def test_both_dashboards_have_a_datasource_variable_used_by_every_panel(tmp_path: Path) -> None:
    paths = render(tmp_path)
    assert sorted(path.name for path in paths) == [
        "remediation-effectiveness.json",
        "remediation-intelligence.json",
    ]
    titles = set()
    for path in paths:
        dashboard = json.loads(path.read_text())
        titles.add(dashboard["title"])
        [variable] = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
        assert (variable["type"], variable["query"]) == ("datasource", "prometheus")
        for panel in dashboard["panels"]:
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"], panel["title"]
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids))
    assert titles == {"Remediation Effectiveness", "Remediation Intelligence"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def live_families(tmp_path: Path) -> set[str]:
    """Run real command playbooks, then `remediate serve`, and read its /metrics."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "remediate.yml").write_text(CONFIG)
    env = dict(os.environ)
    env.update(
        XDG_STATE_HOME=str(tmp_path / "state"),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        HOME=str(tmp_path / "home"),
    )
    env.pop("REMEDIATE_CONFIG", None)
    # Three failures open broken's breaker; the fourth request is blocked by it (exit 3).
    for playbook, exit_code in (
        ("tidy", 0),
        ("broken", 1),
        ("broken", 1),
        ("broken", 1),
        ("broken", 3),
        ("tidy", 0),
    ):
        ran = subprocess.run(
            [REMEDIATE, "run", playbook], env=env, cwd=workdir, capture_output=True, timeout=120
        )
        assert ran.returncode == exit_code, ran.stderr
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(
        [REMEDIATE, "serve", "--port", str(port)], env=env, cwd=workdir, stdout=log, stderr=log
    )
    try:
        for _ in range(200):  # bounded wait for the first answer
            if process.poll() is not None:
                pytest.fail(
                    f"serve exited {process.returncode}: {(tmp_path / 'serve.log').read_text()}"
                )
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
                if response.status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            pytest.fail("serve did not answer /metrics")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        log.close()
    names = set()
    for family in text_string_to_metric_families(response.text):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_count", "_sum"))
    return names


@pytest.mark.integration
def test_every_metric_the_dashboards_query_is_served_by_remediate(tmp_path: Path) -> None:
    require_binary("true", "coreutils")
    live = live_families(tmp_path)
    # The runs above left real samples: the families are not just declared, they carry data.
    assert "remediation_playbook_executions_total" in live
    assert "remediation_playbook_duration_seconds_bucket" in live
    queried: dict[str, set[str]] = {}
    for name, text in dashboards().items():
        for expr in expressions(json.loads(text)):
            names = metric_names(expr)
            assert names, f"{name}: no metric in {expr!r}"
            for metric in names:
                queried.setdefault(metric, set()).add(name)
    missing = {metric: files for metric, files in queried.items() if metric not in live}
    assert missing == {}
    assert len(queried) >= 14  # the seed's nine families and the gate's, not a token few
