"""The shared read of runs and figures: slices of the window, groups against a count by hand."""

from __future__ import annotations

import math
import threading
from collections import Counter, defaultdict
from itertools import pairwise
from pathlib import Path

import pytest

from remediate.analytics.effectiveness import ACHIEVEMENTS
from remediate.analytics.monthly import monthly
from remediate.analytics.recommendations import recommendations
from remediate.analytics.roi import roi
from remediate.analytics.summary import alongside, index_keys, summarize
from remediate.analytics.synthetic import fill
from remediate.analytics.trends import trends
from remediate.analytics.window import DAY, WEEK, Window
from remediate.config.models import Analytics, Settings
from remediate.store import Store
from remediate.store import tables as t
from tests.analytics_history import MONTH, ROWS, History, execution_rows, insert, load

WINDOW = Window.month(MONTH)
ANALYTICS = Analytics(manual_minutes={"disk-cleanup": 2})


@pytest.fixture
def history(store: Store) -> History:
    fill(store, MONTH, executions=ROWS, seed=29)
    return load(store)


def test_a_month_is_cut_at_every_day_and_at_its_middle() -> None:
    slices = WINDOW.slices(DAY)
    assert (slices[0].start, slices[-1].end) == (WINDOW.start, WINDOW.end)
    assert all(a.end == b.start for a, b in pairwise(slices))
    # 31 days, and the 16th split at noon, the month's middle.
    assert len(slices) == 32
    assert [piece.day for piece in slices].count(15) == 2
    assert WINDOW.middle in {piece.start for piece in slices}
    for piece in slices:
        assert piece.day == math.floor((piece.start - WINDOW.start) / DAY)
        assert piece.week == piece.day // 7
        assert piece.half == (piece.start >= WINDOW.middle)
    assert [(p.start, p.end) for p in WINDOW.slices()] == [
        (WINDOW.start, WINDOW.middle),
        (WINDOW.middle, WINDOW.end),
    ]


def test_a_window_that_starts_mid_second_is_cut_from_its_own_start() -> None:
    window = Window.last("10d", now=1766500000.123457)
    slices = window.slices(WEEK)
    assert [p.start for p in slices] == [window.start, window.middle, window.start + WEEK]
    assert [(p.week, p.half) for p in slices] == [(0, 0), (0, 1), (1, 1)]
    assert slices[-1].end == window.end


def test_runs_and_figures_add_up_to_a_count_by_hand(history: History, store: Store) -> None:
    with store.reading() as connection:
        summary = summarize(connection, WINDOW, width=DAY, analytics=ANALYTICS, kinds=ACHIEVEMENTS)
    runs: dict[tuple[object, ...], list[dict[str, object]]] = defaultdict(list)
    for e in history.executions:
        if WINDOW.start <= e["admitted_at"] < WINDOW.end:
            day = math.floor((e["admitted_at"] - WINDOW.start) / DAY)
            half = int(e["admitted_at"] >= WINDOW.middle)
            runs[(e["playbook"], e["source"], e["status"], day, half)].append(e)
    found = {(g.playbook, g.source, g.status, g.slice.day, g.slice.half): g for g in summary.runs}
    assert set(found) == set(runs)
    for key, mine in runs.items():
        group = found[key]
        baseline = 60 * ANALYTICS.manual_minutes.get(key[0], ANALYTICS.default_manual_minutes)
        assert group.count == len(mine)
        assert group.first_attempts == sum(e["attempt"] == 1 for e in mine)
        assert group.durations == len(mine)
        assert group.duration_sum == pytest.approx(sum(e["duration_seconds"] for e in mine))
        assert group.saving_sum == pytest.approx(
            sum(max(0.0, baseline - e["duration_seconds"]) for e in mine)
        )
    wanted: Counter[tuple[object, ...]] = Counter()
    for i in history.impacts:
        if i["kind"] in ACHIEVEMENTS and WINDOW.start <= i["at"] < WINDOW.end:
            slice_ = math.floor((i["at"] - WINDOW.start) / DAY), int(i["at"] >= WINDOW.middle)
            key = (i["kind"], i["subject"], i["playbook"], *slice_)
            wanted[(*key, "count")] += 1
            wanted[(*key, "positive")] += i["value"] > 0
            wanted[(*key, "total")] += i["value"]
    found: Counter[tuple[object, ...]] = Counter()
    for f in summary.figures:
        key = (f.kind, f.subject, f.playbook, f.slice.day, f.slice.half)
        found.update({(*key, "count"): f.count, (*key, "positive"): f.positive})
        found[(*key, "total")] += f.total
    assert found == wanted


def test_one_playbook_is_read_alone(history: History, store: Store) -> None:
    with store.reading() as connection:
        summary = summarize(connection, WINDOW, playbook="service-restart")
    assert {group.playbook for group in summary.runs} == {"service-restart"}
    assert sum(group.count for group in summary.runs) == sum(
        e["playbook"] == "service-restart" and WINDOW.start <= e["admitted_at"] < WINDOW.end
        for e in history.executions
    )


def test_the_loose_index_scan_finds_every_combination(history: History, store: Store) -> None:
    e = t.executions
    with store.reading() as connection:
        keys = index_keys(connection, (e.c.playbook, e.c.source, e.c.status))
    assert keys == sorted({(x["playbook"], x["source"], x["status"]) for x in history.executions})


def test_runs_either_side_of_a_day_boundary_stay_in_their_day(store: Store) -> None:
    # PostgreSQL's CAST rounds a double to nearest: the buckets must floor on both databases,
    # and a slice boundary must cut where the bucket arithmetic does.
    boundary = WINDOW.start + 3 * DAY
    runs = [("success", boundary - 0.4, 1.0), ("success", boundary, 1.0)]
    for table, rows in zip(
        (t.requests, t.decisions, t.executions), execution_rows("disk-cleanup", runs), strict=True
    ):
        insert(store, table, rows)
    report = monthly(store, Settings(), WINDOW)
    assert report.daily.executions[2:4] == (1, 1)


def test_reports_refuse_the_summary_of_another_window(store: Store) -> None:
    with store.reading() as connection:
        other = summarize(connection, Window.month("2025-11"), width=DAY)
        by_window = summarize(connection, WINDOW, analytics=Analytics())
    with pytest.raises(ValueError, match="trends"):
        trends(store, WINDOW, summary=other)
    with pytest.raises(ValueError, match="trends"):
        trends(store, WINDOW, summary=by_window)  # not cut at weeks
    with pytest.raises(ValueError, match="ROI"):
        roi(store, ANALYTICS, WINDOW, summary=by_window)  # priced with other baselines
    with pytest.raises(ValueError, match="recommendations"):
        recommendations(store, Settings(), WINDOW, summary=other)


def test_a_read_runs_beside_the_caller_except_on_an_in_memory_database(tmp_path: Path) -> None:
    def thread() -> int:
        return threading.get_ident()

    on_disk = Store.open(f"sqlite:///{tmp_path / 'state.db'}")
    in_memory = Store.open("sqlite://")
    try:
        with alongside(on_disk, thread) as result:
            assert result() != threading.get_ident()
        # Another connection to an in-memory database is another, empty, database.
        with alongside(in_memory, thread) as result:
            assert result() == threading.get_ident()
    finally:
        on_disk.close()
        in_memory.close()
