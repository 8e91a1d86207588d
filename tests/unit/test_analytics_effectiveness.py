"""Effectiveness scores: the SQL aggregation against the same formula computed by hand."""

from __future__ import annotations

import pytest

from remediate.analytics.effectiveness import ACHIEVEMENTS, WEIGHTS, effectiveness
from remediate.analytics.synthetic import fill
from remediate.analytics.window import Window
from remediate.config.models import Analytics
from remediate.store import Store
from remediate.store import tables as t
from tests.analytics_history import MONTH, ROWS, History, execution_rows, insert, load

WINDOW = Window.month(MONTH)


@pytest.fixture
def history(store: Store) -> History:
    fill(store, MONTH, executions=ROWS, seed=11)
    return load(store)


def expected_scores(history: History, analytics: Analytics) -> dict[str, dict[str, object]]:
    """The documented formula, row by row in Python."""
    counted = [
        e
        for e in history.executions
        if WINDOW.start <= e["admitted_at"] < WINDOW.end
        and e["status"] in ("success", "failure", "timeout")
    ]
    scored = [
        f["score"]
        for f in history.forecasts
        if f["score"] is not None and WINDOW.start <= f["scored_at"] < WINDOW.end
    ]
    figures = [
        i
        for i in history.impacts
        if i["kind"] in ACHIEVEMENTS and WINDOW.start <= i["at"] < WINDOW.end
    ]
    result: dict[str, dict[str, object]] = {}
    for playbook in sorted({e["playbook"] for e in counted}):
        runs = [e for e in counted if e["playbook"] == playbook]
        reported = [i for i in figures if i["playbook"] == playbook]
        successes = sum(e["status"] == "success" for e in runs)
        mean = sum(e["duration_seconds"] for e in runs) / len(runs)
        manual = analytics.manual_minutes.get(playbook, analytics.default_manual_minutes)
        parts = {
            "success_rate": successes / len(runs),
            "impact": (sum(i["value"] > 0 for i in reported) / len(reported) if reported else None),
            "execution_time": max(0.0, 1 - mean / (manual * 60)),
            "prediction_accuracy": (
                sum(scored) / len(scored)
                if playbook == "predictive-maintenance" and scored
                else None
            ),
        }
        applying = {k: v for k, v in parts.items() if v is not None}
        score = int(
            100
            * sum(WEIGHTS[k] * v for k, v in applying.items())
            / sum(WEIGHTS[k] for k in applying)
            + 0.5
        )
        result[playbook] = {
            "executions": len(runs),
            "successes": successes,
            "parts": parts,
            "score": score if len(runs) >= analytics.min_executions else None,
        }
    return result


def test_every_score_and_part_matches_the_formula_computed_row_by_row(
    history: History, store: Store
) -> None:
    analytics = Analytics(manual_minutes={"disk-cleanup": 2, "database-maintenance": 45})
    report = effectiveness(store, analytics, WINDOW)
    expected = expected_scores(history, analytics)
    assert [score.playbook for score in report.scores] == list(expected)
    assert len(expected) >= 6  # the synthetic month runs (nearly) every built-in playbook
    for score in report.scores:
        wanted = expected[score.playbook]
        assert (score.executions, score.successes, score.score) == (
            wanted["executions"],
            wanted["successes"],
            wanted["score"],
        ), score.playbook
        for name, value in wanted["parts"].items():  # type: ignore[attr-defined]
            assert score.parts[name] == (pytest.approx(value) if value is not None else None)
    disk = next(score for score in report.scores if score.playbook == "disk-cleanup")
    assert disk.manual_minutes == 2
    assert disk.parts["execution_time"] < 0.9  # a 2-minute baseline makes its runs look slow


def test_a_hand_built_history_scores_as_docs_analytics_md_computes_it(store: Store) -> None:
    # The worked example in docs/analytics.md: 10 disk cleanups, 9 succeed and report a figure,
    # 6 of them positive, 90 s each against a 30-minute baseline:
    # 100 * (40*0.9 + 30*(6/9) + 20*0.95) / 90 = 83.3 -> 83.
    start = WINDOW.start + 3600
    runs = [("success" if n < 9 else "failure", start + n * 3600, 90.0) for n in range(10)]
    requests, decisions, executions = execution_rows("disk-cleanup", runs)
    insert(store, t.requests, requests)
    insert(store, t.decisions, decisions)
    insert(store, t.executions, executions)
    insert(
        store,
        t.impacts,
        [
            {
                "execution_id": e["id"],
                "playbook": "disk-cleanup",
                "kind": "bytes_reclaimed",
                "subject": "/",
                "value": 1e9 if n < 6 else 0.0,
                "at": e["finished_at"],
            }
            for n, e in enumerate(executions[:9])
        ],
    )
    [score] = effectiveness(store, Analytics(), WINDOW).scores
    assert score.parts == {
        "success_rate": 0.9,
        "impact": pytest.approx(6 / 9),
        "execution_time": pytest.approx(0.95),
        "prediction_accuracy": None,
    }
    assert score.score == 83


def test_a_playbook_with_too_little_history_says_so_instead_of_scoring(
    history: History, store: Store
) -> None:
    report = effectiveness(store, Analytics(min_executions=1000), WINDOW)
    assert report.scores
    for score in report.scores:
        assert score.score is None
        assert score.reason == (
            f"too little history: {score.executions} execution(s) in the window, 1000 needed"
        )


def test_asking_for_one_playbook_that_never_ran_reports_it_unscored(store: Store) -> None:
    report = effectiveness(store, Analytics(), WINDOW, playbook="drift-reconciliation")
    [score] = report.scores
    assert (score.playbook, score.executions, score.score) == ("drift-reconciliation", 0, None)
    assert "too little history: 0 execution(s)" in score.reason


def test_only_the_asked_playbook_is_scored(history: History, store: Store) -> None:
    report = effectiveness(store, Analytics(), WINDOW, playbook="self-healing-restart")
    assert [score.playbook for score in report.scores] == ["self-healing-restart"]
    expected = expected_scores(history, Analytics())["self-healing-restart"]
    assert report.scores[0].score == expected["score"]
