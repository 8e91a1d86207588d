"""Recommendations: each rule fires exactly where the history says, with its evidence."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest

from remediate.analytics import recommendations as rules
from remediate.analytics.recommendations import recommendations
from remediate.analytics.synthetic import fill
from remediate.analytics.window import Window
from remediate.config.models import Settings
from remediate.store import Store
from tests.analytics_history import MONTH, ROWS, History, load

WINDOW = Window.month(MONTH)


@pytest.fixture
def history(store: Store) -> History:
    fill(store, MONTH, executions=ROWS, seed=23)
    return load(store)


def inside(value: float) -> bool:
    return WINDOW.start <= value < WINDOW.end


def fired(store: Store, settings: Settings, rule: str) -> dict[str, dict[str, object]]:
    report = recommendations(store, settings, WINDOW)
    return {item.subject: item.evidence for item in report.items if item.rule == rule}


def test_services_oom_killed_three_times_are_told_to_raise_their_limit(
    history: History, store: Store
) -> None:
    settings = Settings(services=[{"name": "jellyfin", "memory_limit": 512 * 2**20}])
    kills = Counter()
    for impact in history.impacts:
        if impact["kind"] == "oom_detected" and inside(impact["at"]):
            kills[impact["subject"]] += impact["value"]
    found = fired(store, settings, "memory-limit")
    assert {service: evidence["oom_kills"] for service, evidence in found.items()} == {
        service: count for service, count in kills.items() if count >= rules.OOM_KILLS
    }
    assert "jellyfin" in found
    report = recommendations(store, settings, WINDOW)
    message = next(i.message for i in report.items if i.subject == "jellyfin")
    assert message.endswith("(limit now 512 MiB)")
    assert found["jellyfin"]["limit"] == 512 * 2**20


def test_playbooks_triggered_three_times_a_week_are_called_too_aggressive(
    history: History, store: Store
) -> None:
    runs = Counter(
        e["playbook"]
        for e in history.executions
        if inside(e["admitted_at"])
        and e["attempt"] == 1
        and e["source"] in ("webhook", "autonomous")
    )
    weeks = WINDOW.weeks
    found = fired(store, Settings(), "too-frequent")
    assert {name: evidence["runs"] for name, evidence in found.items()} == {
        name: count for name, count in runs.items() if count >= rules.RUNS_PER_WEEK * weeks
    }
    assert found  # the synthetic month is busy enough for at least one
    # A quieter playbook is left alone: the rule is a threshold, not a ranking.
    assert set(found) != set(runs)


def test_a_breaker_that_opened_is_reported_with_its_blocks(history: History, store: Store) -> None:
    blocks = defaultdict(list)
    for d in history.decisions:
        if (
            d["check_name"] == "circuit_breaker"
            and d["action"] == "block"
            and inside(d["created_at"])
        ):
            blocks[d["playbook"]].append(d["created_at"])
    found = fired(store, Settings(), "circuit-breaker")
    assert {name: evidence["blocked"] for name, evidence in found.items()} == {
        name: len(times) for name, times in blocks.items()
    }
    assert found
    for name, evidence in found.items():
        failed = evidence["last_failed_execution"]
        row = next(e for e in history.executions if e["id"] == failed)
        assert (row["playbook"], row["status"] in ("failure", "timeout")) == (name, True)


def test_escalations_that_were_always_approved_ask_for_more_confidence(
    history: History, store: Store
) -> None:
    decisions = {d["id"]: d for d in history.decisions}
    outcomes = defaultdict(list)
    for approval in history.approvals:
        if inside(approval["created_at"]) and approval["status"] != "pending":
            outcomes[decisions[approval["decision_id"]]["playbook"]].append(approval["status"])
    expected = {
        name: len(statuses)
        for name, statuses in outcomes.items()
        if len(statuses) >= rules.APPROVALS and set(statuses) == {"approved"}
    }
    found = fired(store, Settings(), "always-approved")
    assert {name: evidence["approved"] for name, evidence in found.items()} == expected
    assert "database-maintenance" in found  # it needs confirmation and is always approved
    assert "self-healing-restart" not in found  # some of its escalations were rejected


def test_resources_whose_forecasts_score_below_sixty_percent_are_flagged(
    history: History, store: Store
) -> None:
    scores = defaultdict(list)
    for forecast in history.forecasts:
        if forecast["score"] is not None and inside(forecast["scored_at"]):
            scores[forecast["resource"]].append(forecast["score"])
    settings = Settings()
    expected = {
        resource: sum(values) / len(values)
        for resource, values in scores.items()
        if sum(values) / len(values) < rules.ACCURACY
        and len(values) >= settings.analytics.min_executions
    }
    found = fired(store, settings, "forecast-accuracy")
    assert {name: evidence["accuracy"] for name, evidence in found.items()} == {
        name: pytest.approx(value, abs=1e-4) for name, value in expected.items()
    }
    assert set(found) == {"memory"}


def test_a_quiet_history_recommends_nothing(store: Store) -> None:
    assert recommendations(store, Settings(), WINDOW).items == ()
