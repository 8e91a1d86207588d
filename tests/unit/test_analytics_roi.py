"""ROI: prevention, avoided interventions, resolution times and time saved, by hand."""

from __future__ import annotations

import pytest

from remediate.analytics.roi import AUTOMATIC, PREVENTION_SECONDS, roi
from remediate.analytics.synthetic import fill
from remediate.analytics.window import Window
from remediate.config.models import Analytics
from remediate.store import Store
from remediate.store import tables as t
from tests.analytics_history import MONTH, ROWS, History, execution_rows, insert, load

WINDOW = Window.month(MONTH)
ANALYTICS = Analytics(manual_minutes={"self-healing-restart": 20, "predictive-maintenance": 0.05})


@pytest.fixture
def history(store: Store) -> History:
    fill(store, MONTH, executions=ROWS, seed=3)
    return load(store)


def inside(value: float) -> bool:
    return WINDOW.start <= value < WINDOW.end


def test_incidents_prevented_are_critical_forecasts_followed_by_an_autonomous_fix(
    history: History, store: Store
) -> None:
    report = roi(store, ANALYTICS, WINDOW)
    fixes = [
        e["admitted_at"]
        for e in history.executions
        if e["source"] == "autonomous" and e["status"] == "success"
    ]
    critical = [
        f for f in history.forecasts if f["severity"] == "critical" and inside(f["created_at"])
    ]
    prevented = [
        f
        for f in critical
        if any(f["created_at"] <= at < f["created_at"] + PREVENTION_SECONDS for at in fixes)
    ]
    assert report.critical_forecasts == len(critical)
    assert report.incidents_prevented == len(prevented) > 0
    assert report.incidents_prevented < report.critical_forecasts  # some were left unanswered
    assert sum(report.prevented_by_resource.values()) == len(prevented)


def test_avoided_interventions_and_time_saved_use_the_manual_baseline_per_playbook(
    history: History, store: Store
) -> None:
    report = roi(store, ANALYTICS, WINDOW)
    avoided = [
        e
        for e in history.executions
        if inside(e["admitted_at"]) and e["status"] == "success" and e["source"] in AUTOMATIC
    ]
    assert report.interventions_avoided == len(avoided)
    by_name = {item.playbook: item for item in report.playbooks}
    for playbook in {e["playbook"] for e in avoided}:
        mine = [e for e in avoided if e["playbook"] == playbook]
        baseline = 60 * ANALYTICS.manual_minutes.get(playbook, ANALYTICS.default_manual_minutes)
        saved = sum(max(0.0, baseline - e["duration_seconds"]) for e in mine)
        item = by_name[playbook]
        assert item.interventions_avoided == len(mine)
        assert item.time_saved_seconds == pytest.approx(saved)
        assert item.manual_minutes * 60 == pytest.approx(baseline)
    # A 3-second baseline is shorter than most of its runs: each saving is clipped at zero,
    # so the total stays positive where a plain difference of sums would be negative.
    quick = [e for e in avoided if e["playbook"] == "predictive-maintenance"]
    assert 3 * len(quick) - sum(e["duration_seconds"] for e in quick) < 0
    assert by_name["predictive-maintenance"].time_saved_seconds >= 0
    assert report.time_saved_seconds == pytest.approx(
        sum(item.time_saved_seconds for item in report.playbooks)
    )


def test_resolution_runs_from_alert_start_to_fix_and_to_the_resolved_notification(
    history: History, store: Store
) -> None:
    report = roi(store, ANALYTICS, WINDOW)
    resolved = {
        (r["fingerprint"], r["alert_starts_at"]): r["alert_ends_at"]
        for r in history.requests
        if r["alert_ends_at"] is not None
    }
    checked = 0
    for item in report.playbooks:
        fixes = []
        for e in history.executions:
            if e["playbook"] != item.playbook or e["status"] != "success":
                continue
            request = history.request_of(e)
            if inside(e["admitted_at"]) and request["alert_starts_at"] is not None:
                fixes.append((e, request))
        assert item.alerts_fixed == len(fixes), item.playbook
        if not fixes:
            assert item.mean_seconds_to_fix is None
            continue
        checked += 1
        to_fix = [e["finished_at"] - r["alert_starts_at"] for e, r in fixes]
        assert item.mean_seconds_to_fix == pytest.approx(sum(to_fix) / len(to_fix))
        ends = [
            resolved[(r["fingerprint"], r["alert_starts_at"])] - r["alert_starts_at"]
            for _, r in fixes
            if (r["fingerprint"], r["alert_starts_at"]) in resolved
        ]
        assert item.alerts_resolved == len(ends) > 0
        assert item.mean_seconds_to_resolved == pytest.approx(sum(ends) / len(ends))
        assert item.mean_seconds_to_resolved > item.mean_seconds_to_fix
    assert checked >= 3


def test_manual_runs_save_no_intervention(store: Store) -> None:
    runs = [("success", WINDOW.start + 600 * n, 30.0) for n in range(4)]
    for table, rows in zip(
        (t.requests, t.decisions, t.executions),
        execution_rows("service-restart", runs),
        strict=True,
    ):
        insert(store, table, rows)
    report = roi(store, Analytics(), WINDOW)
    assert (report.interventions_avoided, report.time_saved_seconds) == (0, 0)
    assert report.mean_seconds_to_fix is None


def test_a_scheduled_fix_saves_its_baseline_minus_its_duration(store: Store) -> None:
    runs = [("success", WINDOW.start + 600, 120.0), ("failure", WINDOW.start + 1800, 60.0)]
    for table, rows in zip(
        (t.requests, t.decisions, t.executions),
        execution_rows("disk-cleanup", runs, source="schedule"),
        strict=True,
    ):
        insert(store, table, rows)
    report = roi(store, Analytics(manual_minutes={"disk-cleanup": 10}), WINDOW)
    assert report.interventions_avoided == 1
    assert report.time_saved_seconds == 600 - 120


def alert_fixes(store: Store, fixes: list[tuple[str, float, float]]) -> list[dict[str, object]]:
    """Successful webhook runs of service-restart answering alerts (fingerprint, start,
    admitted), each finishing 60 s after its admission; returns the executions."""
    runs = [("success", admitted, 60.0) for _, _, admitted in fixes]
    requests, decisions, executions = execution_rows("service-restart", runs, source="webhook")
    for request, execution, (fingerprint, starts, _) in zip(
        requests, executions, fixes, strict=True
    ):
        alert = {"alertname": "ServiceDown", "fingerprint": fingerprint, "alert_starts_at": starts}
        request.update(alert)
        execution.update(alert)  # a run carries the alert it answered, as its request does
    for table, rows in zip(
        (t.requests, t.decisions, t.executions), (requests, decisions, executions), strict=True
    ):
        insert(store, table, rows)
    return executions


def test_resolution_takes_the_first_resolved_notification_of_the_alert(store: Store) -> None:
    start = WINDOW.start
    executions = alert_fixes(
        store, [("a", start + 100, start + 200), ("b", start - 50, start + 10)]
    )
    resent = [(100, start + 900), (101, start + 500)]  # resent out of order: 500 s is first
    insert(
        store,
        t.requests,
        [
            {
                "id": request_id,
                "created_at": ends,
                "source": "webhook",
                "playbook": "service-restart",
                "parameters": {},
                "alertname": "ServiceDown",
                "fingerprint": "a",
                "alert_starts_at": start + 100,
                "alert_ends_at": ends,
                "confidence": 0.0,
            }
            for request_id, ends in resent
        ],
    )
    [item] = roi(store, Analytics(), WINDOW).playbooks
    assert (item.alerts_fixed, item.alerts_resolved) == (2, 1)
    to_fix = [
        executions[0]["finished_at"] - (start + 100),
        executions[1]["finished_at"] - start + 50,
    ]
    assert item.mean_seconds_to_fix == pytest.approx(sum(to_fix) / 2)
    assert item.mean_seconds_to_resolved == pytest.approx(400.0)


def test_a_prevention_counts_a_fix_from_the_forecast_to_just_before_the_hour(
    store: Store,
) -> None:
    start = WINDOW.start
    forecasts = [start + 1000, start + 10_000, start + 20_000]
    # At the forecast itself; exactly an hour after it (too late); a second before it.
    fixes = [start + 1000, start + 10_000 + PREVENTION_SECONDS, start + 20_000 - 1]
    for table, rows in zip(
        (t.requests, t.decisions, t.executions),
        execution_rows(
            "disk-cleanup", [("success", at, 30.0) for at in fixes], source="autonomous"
        ),
        strict=True,
    ):
        insert(store, table, rows)
    insert(
        store,
        t.forecasts,
        [
            {
                "created_at": at,
                "resource": "disk:/",
                "current": 0.9,
                "trend_per_day": 0.02,
                "horizon_at": at + 86400,
                "predicted": 0.92,
                "severity": "critical",
                "confidence": 90.0,
            }
            for at in forecasts
        ],
    )
    report = roi(store, Analytics(), WINDOW)
    assert (report.critical_forecasts, report.incidents_prevented) == (3, 1)
    assert report.prevented_by_resource == {"disk:/": 1}


def test_both_forms_of_the_resolution_query_agree(history: History, store: Store) -> None:
    """SQLite looks each fix's resolution up in order; PostgreSQL hash-joins the fixes to
    the grouped resolutions. Over the same synthetic month, on either store, both give
    the same figures per playbook."""
    from remediate.analytics.roi import _resolution, _resolution_joined

    with store.reading() as connection:
        looked_up = sorted(tuple(row) for row in connection.execute(_resolution(WINDOW)))
        joined = sorted(tuple(row) for row in connection.execute(_resolution_joined(WINDOW)))
    assert looked_up and [row[:2] for row in looked_up] == [row[:2] for row in joined]
    assert any(row[3] for row in looked_up)  # some fixes were resolved
    for one, other in zip(looked_up, joined, strict=True):
        assert one[3] == other[3]
        assert one[2] == pytest.approx(other[2]) and one[4] == pytest.approx(other[4])
