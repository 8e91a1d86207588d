"""The monthly report: the seed's Markdown layout, figures by hand, offline HTML with charts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from remediate.analytics.monthly import (
    human_bytes,
    monthly,
    render_html,
    render_markdown,
    scheduled,
    write,
)
from remediate.analytics.synthetic import fill
from remediate.analytics.window import Window
from remediate.clock import parse_time
from remediate.config.models import Settings
from remediate.errors import UsageError
from remediate.store import Store
from tests.analytics_history import MONTH, ROWS, History, load

WINDOW = Window.month(MONTH)
SEED_HEADINGS = ["## Summary", "## Top Performers", "## Incidents Prevented", "## Recommendations"]


@pytest.fixture
def history(store: Store) -> History:
    fill(store, MONTH, executions=ROWS, seed=17)
    return load(store)


def inside(value: float) -> bool:
    return WINDOW.start <= value < WINDOW.end


def test_the_markdown_follows_the_seed_layout_with_figures_computed_by_hand(
    history: History, store: Store
) -> None:
    report = monthly(store, Settings(), WINDOW)
    text = render_markdown(report)
    assert text.startswith("# Remediation Report - December 2025\n")
    positions = [text.index(heading + "\n") for heading in SEED_HEADINGS]
    assert positions == sorted(positions)

    counted = [
        e
        for e in history.executions
        if inside(e["admitted_at"]) and e["status"] in ("success", "failure", "timeout")
    ]
    successes = sum(e["status"] == "success" for e in counted)
    reclaimed = sum(
        i["value"] for i in history.impacts if i["kind"] == "bytes_reclaimed" and inside(i["at"])
    )
    restarted = sum(
        i["value"] for i in history.impacts if i["kind"] == "service_restarted" and inside(i["at"])
    )
    assert f"- **Total Executions:** {len(counted)}\n" in text
    assert f"- **Success Rate:** {100 * successes / len(counted):.0f}%\n" in text
    assert f"- **Disk Reclaimed:** {human_bytes(reclaimed)}\n" in text
    assert f"- **Services Recovered:** {restarted:.0f}\n" in text
    assert report.summary["bytes_reclaimed"] == pytest.approx(reclaimed)

    runs = {}
    for e in counted:
        runs[e["playbook"]] = runs.get(e["playbook"], 0) + 1
    busiest = sorted(runs, key=lambda name: (-runs[name], name))[:3]
    top = re.findall(r"^\d\. (\S+) \((\d+) runs, \d+% (?:success|accuracy)\)$", text, re.M)
    assert top == [(name, str(runs[name])) for name in busiest]
    assert re.search(r"^- \d+ disk exhaustion events \(via predictive maintenance\)$", text, re.M)
    assert "1. raise the memory limit of" in text  # recommendations, numbered as in the seed


def test_daily_series_add_up_to_the_month(history: History, store: Store) -> None:
    report = monthly(store, Settings(), WINDOW)
    assert len(report.daily.days) == 31
    assert sum(report.daily.executions) == report.summary["executions"]
    assert sum(report.daily.bytes_reclaimed) == pytest.approx(report.summary["bytes_reclaimed"])
    christmas = parse_time("2025-12-25T00:00:00Z")
    runs = [
        e
        for e in history.executions
        if christmas <= e["admitted_at"] < christmas + 86400
        and e["status"] in ("success", "failure", "timeout")
    ]
    assert report.daily.executions[24] == len(runs)
    rate = report.daily.success_rate[24]
    assert rate == (
        pytest.approx(sum(e["status"] == "success" for e in runs) / len(runs)) if runs else None
    )


def test_the_html_has_three_inline_charts_and_nothing_that_needs_a_network(
    history: History, store: Store
) -> None:
    html = render_html(monthly(store, Settings(), WINDOW))
    assert html.count("<svg ") == 3
    for title in ("Executions per day", "Success rate per day", "Bytes reclaimed per day"):
        assert f"<title>{title}</title>" in html
    assert "<script" not in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    for heading in ("Summary", "Top Performers", "Incidents Prevented", "Recommendations"):
        assert f"<h2>{heading}</h2>" in html


def test_a_hostile_playbook_name_is_escaped_in_the_html(store: Store) -> None:
    from remediate.store import tables as t
    from tests.analytics_history import execution_rows, insert

    name = "<script>alert(1)</script>"
    rows = execution_rows(name, [("success", WINDOW.start + 60 * n, 1.0) for n in range(6)])
    for table, batch in zip((t.requests, t.decisions, t.executions), rows, strict=True):
        insert(store, table, batch)
    html = render_html(monthly(store, Settings(), WINDOW))
    assert name not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_write_puts_markdown_and_html_side_by_side(
    history: History, store: Store, tmp_path: Path
) -> None:
    paths = write(monthly(store, Settings(), WINDOW), tmp_path / "reports")
    assert [path.name for path in paths] == [
        "remediation-monthly-202512.md",
        "remediation-monthly-202512.html",
    ]
    assert paths[0].read_text().startswith("# Remediation Report - December 2025")
    assert "<h1>Remediation Report - December 2025</h1>" in paths[1].read_text()


def test_the_schedule_on_the_first_reports_the_month_that_just_ended(
    history: History, store: Store, tmp_path: Path
) -> None:
    settings = Settings(state={"directory": str(tmp_path / "state")})
    paths = scheduled(store, settings, now=parse_time("2026-01-01T07:00:00Z"))
    assert paths[0] == tmp_path / "state" / "reports" / "remediation-monthly-202512.md"
    assert "**Total Executions:** 0" not in paths[0].read_text()


def test_an_empty_month_still_renders(store: Store) -> None:
    report = monthly(store, Settings(), Window.month("2024-02"))
    text = render_markdown(report)
    assert "# Remediation Report - February 2024" in text
    assert "- **Total Executions:** 0" in text
    assert "No executions this month." in text
    assert len(report.daily.days) == 29
    assert render_html(report).count("<svg ") == 3


@pytest.mark.parametrize("text", ["2025-13", "2025-1", "December", "2025-00"])
def test_a_bad_month_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError) as raised:
        Window.month(text)
    assert "not a month" in str(raised.value)


def test_previous_month_crosses_the_year() -> None:
    assert Window.previous_month(now=parse_time("2026-01-01T07:00:00Z")) == Window.month("2025-12")
    assert Window.previous_month(now=parse_time("2025-03-15T00:00:00Z")) == Window.month("2025-02")
