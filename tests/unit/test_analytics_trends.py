"""Trends: weekly buckets, halves and directions, refusals, accuracy, root causes, by hand."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from remediate.analytics.synthetic import fill
from remediate.analytics.trends import FINISHED, accuracy_direction, direction, trends
from remediate.analytics.window import WEEK, Window
from remediate.store import Store
from remediate.store import tables as t
from tests.analytics_history import MONTH, ROWS, History, execution_rows, insert, load

WINDOW = Window.month(MONTH)


@pytest.fixture
def history(store: Store) -> History:
    fill(store, MONTH, executions=ROWS, seed=5)
    return load(store)


def first_runs(history: History) -> list[dict[str, object]]:
    return [
        e
        for e in history.executions
        if WINDOW.start <= e["admitted_at"] < WINDOW.end
        and e["attempt"] == 1
        and e["status"] in FINISHED
    ]


def test_runs_per_week_and_per_half_match_a_count_by_hand(history: History, store: Store) -> None:
    report = trends(store, WINDOW)
    runs = first_runs(history)
    assert len(report.week_starts) == 5  # 31 days: four weeks and a partial fifth
    for item in report.playbooks:
        mine = [e for e in runs if e["playbook"] == item.playbook]
        weekly = Counter(math.floor((e["admitted_at"] - WINDOW.start) / WEEK) for e in mine)
        assert item.weekly == tuple(weekly.get(week, 0) for week in range(5)), item.playbook
        first = sum(e["admitted_at"] < WINDOW.middle for e in mine)
        assert (item.first_half, item.second_half) == (first, len(mine) - first)
        assert item.direction == direction(first, len(mine) - first)
    assert {item.playbook for item in report.playbooks} == {e["playbook"] for e in runs}
    by_name = {item.playbook: item for item in report.playbooks}
    # The generator's shapes: cleanups crowd the end of the month, self-healing the start.
    assert by_name["disk-cleanup"].direction == "increasing"
    assert by_name["self-healing-restart"].direction == "decreasing"


def test_blocks_and_escalations_are_counted_by_the_check_that_decided(
    history: History, store: Store
) -> None:
    report = trends(store, WINDOW)
    wanted = Counter(
        (d["action"], d["check_name"] or "")
        for d in history.decisions
        if d["action"] in ("block", "escalate") and WINDOW.start <= d["created_at"] < WINDOW.end
    )
    assert {(r.action, r.check): r.count for r in report.refusals} == dict(wanted)
    counts = [r.count for r in report.refusals]
    assert counts == sorted(counts, reverse=True)


def test_forecast_accuracy_per_week_and_per_half_match_the_scored_forecasts(
    history: History, store: Store
) -> None:
    report = trends(store, WINDOW)
    scored = [
        f
        for f in history.forecasts
        if f["score"] is not None and WINDOW.start <= f["scored_at"] < WINDOW.end
    ]
    for week in report.accuracy:
        mine = [
            f["score"]
            for f in scored
            if math.floor((f["scored_at"] - WINDOW.start) / WEEK) == week.week
        ]
        assert week.forecasts == len(mine)
        assert week.accuracy == (pytest.approx(sum(mine) / len(mine)) if mine else None)
    first = [f["score"] for f in scored if f["scored_at"] < WINDOW.middle]
    second = [f["score"] for f in scored if f["scored_at"] >= WINDOW.middle]
    assert report.accuracy_halves == (
        pytest.approx(sum(first) / len(first)),
        pytest.approx(sum(second) / len(second)),
    )
    assert report.accuracy_direction == "improving"  # the generator's model learns


def test_root_cause_shares_are_of_diagnosed_first_attempts(history: History, store: Store) -> None:
    report = trends(store, WINDOW)
    causes = Counter(e["root_cause"] for e in first_runs(history) if e["root_cause"])
    total = sum(causes.values())
    assert {c.root_cause: (c.incidents, pytest.approx(c.share)) for c in report.root_causes} == {
        cause: (count, pytest.approx(count / total)) for cause, count in causes.items()
    }
    assert report.root_causes[0].root_cause == "memory_pressure"
    assert sum(c.share for c in report.root_causes) == pytest.approx(1.0)


def test_a_run_half_a_second_before_a_week_boundary_stays_in_the_earlier_week(
    store: Store,
) -> None:
    # PostgreSQL's CAST rounds a double to nearest: the bucket must floor on both databases.
    boundary = WINDOW.start + WEEK
    runs = [("success", boundary - 0.4, 1.0), ("success", boundary, 1.0)]
    for table, rows in zip(
        (t.requests, t.decisions, t.executions), execution_rows("disk-cleanup", runs), strict=True
    ):
        insert(store, table, rows)
    [item] = trends(store, WINDOW).playbooks
    assert item.weekly == (1, 1, 0, 0, 0)


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        (5, 12, "increasing"),
        (8, 3, "decreasing"),
        (10, 11, "steady"),
        (0, 1, "steady"),
        (0, 2, "increasing"),
        (20, 24, "increasing"),
        (20, 23, "steady"),
    ],
    ids=["seed-cleanups", "seed-restarts", "noise", "one-more", "two-more", "20pct", "under-20pct"],
)
def test_direction_needs_two_runs_and_a_fifth_of_the_first_half(
    first: int, second: int, expected: str
) -> None:
    assert direction(first, second) == expected


def test_accuracy_direction_moves_at_five_points() -> None:
    assert accuracy_direction(0.65, 0.82) == "improving"
    assert accuracy_direction(0.82, 0.70) == "worsening"
    assert accuracy_direction(0.80, 0.83) == "steady"
    assert accuracy_direction(None, 0.9) == "unknown"


def test_an_empty_store_has_empty_trends(store: Store) -> None:
    report = trends(store, WINDOW)
    assert (report.playbooks, report.refusals, report.root_causes) == ((), (), ())
    assert all(week.accuracy is None for week in report.accuracy)
    assert report.accuracy_direction == "unknown"
