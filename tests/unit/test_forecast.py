"""Forecasts from samples: severity, time to full, confidence, scoring and the accuracy breaker.

Samples here are written to the real store (SQLite, and PostgreSQL in CI) on virtual
time; the live filesystem version is tests/integration/test_samples_live.py.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from remediate.autonomous import accuracy, samples
from remediate.autonomous.accuracy import Breaker
from remediate.autonomous.calendar import Calendar, CalendarError
from remediate.autonomous.decide import decide, forecast_findings
from remediate.autonomous.embedded import EmbeddedScheduler
from remediate.autonomous.forecast import fit
from remediate.autonomous.predict import predict
from remediate.autonomous.samples import Sample, parse_podman_stats
from remediate.clock import ManualClock, parse_time
from remediate.config.models import Autonomous, Settings
from remediate.store import Store
from remediate.system.process import Completed
from tests.helpers import settings_for

FIXTURES = Path(__file__).parent.parent / "fixtures" / "autonomous"
HOUR = 3600.0
DAY = 86400.0
GIB = 1024**3
CLOSED = Breaker(False, None, 0, "no scored forecasts")


def series(resource: str, percents: list[float], *, end: float, step: float = HOUR) -> list[Sample]:
    start = end - step * (len(percents) - 1)
    return [
        Sample(start + index * step, resource, percent / 100 * 100 * GIB, 100 * GIB)
        for index, percent in enumerate(percents)
    ]


def test_a_steadily_filling_disk_is_critical_with_the_right_time_to_full() -> None:
    now = parse_time("2025-12-24T10:00:00Z")
    # 70% -> 74.8% over two days: 2.4 points a day, 91.6% in a week, full in 25.2/2.4 days.
    points = [70 + 0.1 * hour for hour in range(49)]
    forecast = fit(series("disk:/srv", points, end=now), Autonomous(), now=now)
    assert forecast.severity == "critical"
    assert forecast.trend_per_day == pytest.approx(2.4)
    assert forecast.predicted == pytest.approx(74.8 + 7 * 2.4)
    assert forecast.seconds_to_full == pytest.approx(25.2 / 2.4 * DAY, rel=1e-6)
    assert forecast.confidence > 99
    assert forecast.as_dict()["time_to_full"] == "10.5d"


def test_a_flat_series_is_ok_and_confident() -> None:
    now = parse_time("2025-12-24T10:00:00Z")
    forecast = fit(series("disk:/srv", [40.0] * 48, end=now), Autonomous(), now=now)
    assert (forecast.severity, forecast.seconds_to_full) == ("ok", None)
    assert forecast.trend_per_day == pytest.approx(0.0)
    assert forecast.confidence == pytest.approx(100.0)


def test_a_disk_already_over_the_critical_line_is_critical_without_a_trend() -> None:
    now = parse_time("2025-12-24T10:00:00Z")
    forecast = fit(series("disk:/srv", [90.0] * 48, end=now), Autonomous(), now=now)
    assert forecast.severity == "critical"


def test_a_noisy_series_has_low_confidence_and_leads_to_no_action() -> None:
    now = parse_time("2025-12-24T10:00:00Z")
    noise = random.Random(7)
    points = [70 + 0.1 * hour + noise.uniform(-12, 12) for hour in range(72)]
    forecast = fit(series("disk:/srv", points, end=now), Autonomous(), now=now)
    assert forecast.confidence < 50
    [finding] = forecast_findings([forecast])
    decided = decide(finding, Autonomous(), CLOSED)
    assert decided.decision == "skip"
    assert "confidence" in decided.reason and "not above 80%" in decided.reason


def test_a_too_short_series_has_low_confidence_and_its_severity_ignores_the_trend() -> None:
    now = parse_time("2025-12-24T10:00:00Z")
    # Three samples a minute apart, climbing fast: extrapolated, "full in an hour".
    forecast = fit(series("disk:/", [50, 51, 52], end=now, step=60), Autonomous(), now=now)
    assert forecast.confidence < 5
    assert forecast.severity == "ok"
    assert forecast.enough_history is False
    assert forecast.seconds_to_full is not None  # the trend is still shown


def test_one_sample_gives_no_trend_and_no_confidence() -> None:
    now = parse_time("2025-12-24T10:00:00Z")
    forecast = fit(series("memory", [30.0], end=now), Autonomous(), now=now)
    assert (forecast.trend_per_day, forecast.confidence, forecast.severity) == (0.0, 0.0, "ok")


def test_a_warning_forecast_is_never_acted_on() -> None:
    now = parse_time("2025-12-24T10:00:00Z")
    forecast = fit(series("disk:/srv", [78.0] * 48, end=now), Autonomous(), now=now)
    [finding] = forecast_findings([forecast])
    assert finding.kind == "forecast.warning"
    assert decide(finding, Autonomous(), CLOSED).reason == "only critical forecasts are acted on"


def test_a_critical_confident_forecast_maps_to_disk_cleanup_on_its_mount() -> None:
    now = parse_time("2025-12-24T10:00:00Z")
    forecast = fit(
        series("disk:/srv", [70 + 0.1 * h for h in range(49)], end=now), Autonomous(), now=now
    )
    decided = decide(forecast_findings([forecast])[0], Autonomous(), CLOSED)
    assert decided.decision == "act"
    request = decided.request()
    assert (request.playbook, dict(request.parameters), request.source) == (
        "disk-cleanup",
        {"mount": "/srv"},
        "autonomous",
    )
    opened = Breaker(True, 0.4, 12, "forecast accuracy 40% over 12 scored forecasts")
    assert decide(forecast_findings([forecast])[0], Autonomous(), opened).decision == "skip"


# --- the store: a simulated week ----------------------------------------------------------


@pytest.fixture
def week_settings(tmp_path: Path, store_url: str) -> Settings:
    return settings_for(
        tmp_path,
        store_url,
        autonomous={
            "horizon_days": 1,
            "window_days": 1,
            "sample_interval_seconds": 3600,
            "accuracy": {"min_scored": 4, "window_days": 1.5, "threshold": 0.6},
        },
    )


def step_hour(store: Store, clock: ManualClock, settings: Settings, percent: float) -> None:
    clock.advance(hours=1)
    sample = Sample(clock.now(), "disk:/srv", percent * GIB, 100 * GIB)
    samples.write(store, [sample], retention_days=30, now=clock.now())


def forecast_now(store: Store, clock: ManualClock, settings: Settings) -> Any:
    return predict(settings, store, _no_commands, now=clock.now(), record=True, collect=False)


def _no_commands(argv: Any, **_: Any) -> Completed:
    raise AssertionError(f"no command should run here: {argv}")


def test_a_simulated_week_scores_forecasts_and_the_breaker_opens_and_closes(
    store: Store, clock: ManualClock, week_settings: Settings
) -> None:
    """Days 1-2 grow steadily (accurate), days 3-4 swing (a step change every 12 hours:
    forecasts miss), days 5-7 grow steadily again: the breaker opens, then closes."""
    states: list[tuple[int, str]] = []
    percent = 40.0
    for day in range(7):
        for hour in range(24):
            if day in (2, 3) and hour % 12 == 0:
                percent += 25 if (day * 24 + hour) % 24 == 0 else -25  # step up, then down
            else:
                percent += 0.1
            step_hour(store, clock, week_settings, percent)
            if hour % 6 == 5:
                prediction = forecast_now(store, clock, week_settings)
                states.append((day, "open" if prediction.breaker.open else "closed"))
    with store.sql_reading() as db:
        scored = accuracy.rolling(db, now=clock.now(), window_days=30)
    assert scored.scored >= 20
    opened_on = [day for day, state in states if state == "open"]
    assert opened_on, states
    assert min(opened_on) >= 2  # nothing was wrong before the swings
    assert states[-1][1] == "closed"  # the steady days brought accuracy back
    assert any(state == "closed" and day > max(opened_on) - 1 for day, state in states[-3:])
    last = forecast_now(store, clock, week_settings)
    assert last.accuracy["disk:/srv"] >= 0.6


def test_a_forecast_is_scored_against_the_sample_at_its_horizon(
    store: Store, clock: ManualClock, week_settings: Settings
) -> None:
    for hour in range(30):
        step_hour(store, clock, week_settings, 50 + 0.1 * hour)
    forecast_now(store, clock, week_settings)  # predicts 50+0.1*29 + 2.4 = 55.3 in a day
    for hour in range(24):
        step_hour(store, clock, week_settings, 55.0 if hour == 23 else 53.0)
    scored = accuracy.score_matured(store, week_settings.autonomous, now=clock.now())
    [one] = [item for item in scored if item.note == "scored"]
    assert one.actual == pytest.approx(55.0)
    assert one.score == pytest.approx(1 - abs(one.predicted - 55.0) / 10)


def test_an_actual_value_from_elsewhere_is_asked_outside_the_write_lock(
    store: Store, clock: ManualClock, week_settings: Settings
) -> None:
    """Prometheus answers over HTTP: while it is asked, gate decisions must not wait on
    the store's write lock. The outcome is written after, once."""
    for hour in range(30):
        step_hour(store, clock, week_settings, 50 + 0.1 * hour)
    forecast_now(store, clock, week_settings)
    clock.advance(hours=25)
    asked: list[bool] = []

    def from_prometheus(resource: str, when: float) -> Sample:
        asked.append(store._write_lock.locked())
        return Sample(when, resource, 55.0, 100.0)

    scored = accuracy.score_matured(
        store, week_settings.autonomous, now=clock.now(), actual=from_prometheus
    )
    assert asked and not any(asked)
    assert {item.note for item in scored} == {"scored"}
    assert all(item.actual == pytest.approx(55.0) for item in scored)
    again = accuracy.score_matured(
        store, week_settings.autonomous, now=clock.now(), actual=from_prometheus
    )
    assert again == []


def test_a_remediated_resource_closes_its_forecast_unscored(
    store: Store, clock: ManualClock, week_settings: Settings, tmp_path: Path
) -> None:
    from remediate.pipeline.pipeline import Pipeline
    from remediate.pipeline.request import Request
    from remediate.playbooks.registry import Registry

    settings = settings_for(
        tmp_path,
        str(store.engine.url.render_as_string(hide_password=False)),
        autonomous=week_settings.autonomous.model_dump(),
        playbooks={
            "commands": [
                {
                    "name": "fix",
                    "parameters": {"mount": {"type": "string", "required": True}},
                    "target_parameter": "mount",
                    "steps": [{"name": "x", "argv": ["true"]}],
                }
            ]
        },
    )
    for hour in range(30):
        step_hour(store, clock, settings, 50 + 0.1 * hour)
    forecast_now(store, clock, settings)
    pipeline = Pipeline(settings, store, Registry.from_settings(settings), clock=clock)
    clock.advance(hours=2)
    _, report = pipeline.run(Request("fix", {"mount": "/srv"}))
    assert report is not None and report.status == "success"
    for _ in range(24):
        step_hour(store, clock, settings, 30.0)
    scored = accuracy.score_matured(store, settings.autonomous, now=clock.now())
    assert [item.note for item in scored] == ["remediated"]
    assert scored[0].score is None


# --- collectors -----------------------------------------------------------------------------


def test_recorded_podman_stats_become_container_memory_samples() -> None:
    text = (FIXTURES / "podman-stats.json").read_text()
    found = {sample.resource: sample for sample in parse_podman_stats(text, now=1.0)}
    # The created-but-never-started container reports "0B / 0B" and is left out.
    assert set(found) == {"container:rec-web-1", "container:rec-db-1"}
    assert found["container:rec-db-1"].used == pytest.approx(266_200)
    assert found["container:rec-db-1"].capacity == pytest.approx(67_110_000)


def test_unparsable_podman_output_is_a_problem_naming_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("shutil.which", lambda name: f"/usr/bin/{name}")

    def garbled(argv: Any, **_: Any) -> Completed:
        return Completed(tuple(argv), 0, '[{"name": "web", "mem_usage": "lots / 8GB"}]', "", 0.1)

    settings = Settings.model_validate({"state": {"directory": str(tmp_path)}})
    taken, problems = samples.collect(settings, garbled, now=1.0)
    assert [problem for problem in problems if "podman stats --no-stream" in problem]
    assert "not a size" in problems[-1]
    assert any(sample.resource == "memory" for sample in taken)  # the rest still sampled


def test_zram_swap_is_left_out_of_the_swap_sample(tmp_path: Path) -> None:
    swaps = tmp_path / "swaps"
    swaps.write_text(
        "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
        "/dev/zram0                              partition\t8388604\t\t1024\t\t100\n"
    )
    import psutil

    if psutil.swap_memory().total > 8388604 * 1024:
        pytest.skip("this machine has disk swap besides the recorded zram device")
    assert samples.collect_swap(now=1.0, swaps=swaps) == []


# --- calendars and the embedded runner -----------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("Sun *-*-* 03:00:00 UTC", "2025-12-24T10:00:00Z", "2025-12-28T03:00:00Z"),
        ("*-*-* 06:00:00 UTC", "2025-12-24T10:00:00Z", "2025-12-25T06:00:00Z"),
        ("*-*-* 06:30:00 UTC", "2025-12-25T06:00:00Z", "2025-12-25T06:30:00Z"),
        ("*-*-01 07:00:00 UTC", "2025-12-24T10:00:00Z", "2026-01-01T07:00:00Z"),
        ("Mon..Fri *-*-* 9,17:30 UTC", "2025-12-26T18:00:00Z", "2025-12-29T09:30:00Z"),
        ("*:0/15 UTC", "2025-12-24T10:07:00Z", "2025-12-24T10:15:00Z"),
        ("weekly UTC", "2025-12-24T10:00:00Z", "2025-12-29T00:00:00Z"),
    ],
    ids=["sunday", "daily", "same-day", "monthly", "weekdays", "quarter-hour", "weekly"],
)
def test_the_embedded_calendar_finds_the_next_elapse(
    expression: str, after: str, expected: str
) -> None:
    assert Calendar.parse(expression).next_after(parse_time(after)) == parse_time(expected)


@pytest.mark.parametrize("expression", ["*-*-* 25:00", "Funday", "*-02-30 00:00", "*-*~01"])
def test_a_calendar_it_cannot_honour_is_refused_clearly(expression: str) -> None:
    with pytest.raises(CalendarError) as raised:
        Calendar.parse(expression).next_after(0)
    assert str(raised.value)


def test_the_embedded_runner_fires_each_due_schedule_once(clock: ManualClock) -> None:
    settings = Settings.model_validate(
        {
            "schedules": {
                "runner": "embedded",
                "items": [
                    {
                        "name": "check",
                        "playbook": "predictive-maintenance",
                        "calendar": "*:0/30 UTC",
                    },
                    {"name": "report", "task": "monthly-report", "calendar": "*-*-01 07:00 UTC"},
                ],
            }
        }
    )
    fired: list[str] = []
    scheduler = EmbeddedScheduler(settings, fire=lambda s: fired.append(s.name), clock=clock)
    scheduler.plan(clock.now())  # 10:00:00 -> next check at 10:30
    assert scheduler.due(clock.now()) == []
    clock.advance(minutes=30)
    scheduler.due(clock.now())
    scheduler.due(clock.now())  # the same moment again: nothing more
    clock.advance(minutes=29)
    scheduler.due(clock.now())
    clock.advance(minutes=1)
    scheduler.due(clock.now())
    assert fired == ["check", "check"]
    assert json.dumps(sorted(scheduler.next)) == '["check", "report"]'
