"""The condition language: parsing, checking against the fact registry, evaluation, facts."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from remediate.chains.conditions import Condition, ConditionError, Fact, Quantity, validate
from remediate.chains.facts import SystemFacts
from remediate.clock import ManualClock
from remediate.store import Store
from remediate.store import tables as t

GIB = 1024**3


@dataclass
class Facts:
    """Facts from a table, for the evaluator alone; SystemFacts is tested on the real host."""

    values: dict[str, Quantity | float | str | bool | None]

    def value(self, fact: Fact) -> Quantity | float | str | bool | None:
        return self.values.get(fact.render())


@pytest.mark.parametrize(
    ("text", "values", "holds"),
    [
        ("memory_available < 20%", {"memory_available": Quantity(1 * GIB, 10 * GIB)}, True),
        ("memory_available < 20%", {"memory_available": Quantity(3 * GIB, 10 * GIB)}, False),
        ("memory_available < 2GiB", {"memory_available": Quantity(1 * GIB, 10 * GIB)}, True),
        ("20% > memory_available", {"memory_available": Quantity(1 * GIB, 10 * GIB)}, True),
        ('disk_free{mount="/srv"} < 15%', {'disk_free{mount="/srv"}': Quantity(1, 10)}, True),
        ('prediction.severity == "critical"', {"prediction.severity": "critical"}, True),
        ("prediction.severity == 'critical'", {"prediction.severity": "warning"}, False),
        ("steps.disk-cleanup.success", {"steps.disk-cleanup.success": True}, True),
        ("not steps.disk-cleanup.success", {"steps.disk-cleanup.success": True}, False),
        ("!steps.x.failed && recent_failures >= 2",
         {"steps.x.failed": False, "recent_failures": 2}, True),
        ("recent_failures > 5 or (swap_used > 50% and not steps.a.skipped)",
         {"recent_failures": 0, "swap_used": Quantity(6, 10), "steps.a.skipped": False}, True),
        ('steps.db.status != "success"', {"steps.db.status": "failure"}, True),
    ],
    ids=[
        "percent-below",
        "percent-above",
        "size",
        "flipped",
        "label",
        "string",
        "single-quotes",
        "step",
        "not",
        "symbols",
        "nesting",
        "step-status",
    ],
)  # fmt: skip
def test_a_condition_evaluates_against_the_facts_it_names(
    text: str, values: dict[str, Quantity | float | str | bool | None], holds: bool
) -> None:
    evaluation = Condition.parse(text).evaluate(Facts(values))
    assert evaluation.holds is holds
    assert set(evaluation.observed) <= set(values)


@pytest.mark.parametrize(
    "text",
    [
        'prediction.severity == "critical"',
        'prediction.severity != "critical"',
        "memory_available < 20%",
        "steps.disk-cleanup.success",
    ],
)
def test_a_comparison_on_an_unknown_fact_is_false_whatever_the_operator(text: str) -> None:
    evaluation = Condition.parse(text).evaluate(Facts({}))
    assert evaluation.holds is False
    assert list(evaluation.observed.values()) == ["unknown"]


def test_not_of_an_unknown_comparison_is_true_as_documented() -> None:
    assert Condition.parse("not steps.x.success").evaluate(Facts({})).holds is True


@pytest.mark.parametrize(
    ("text", "column", "words"),
    [
        ("memroy_available < 20%", 1, "did you mean: memory_available"),
        ("memory_available < ", 20, "expected a fact or a value"),
        ("memory_available < 20", 18, "percentage (20%) or a size"),
        ('memory_available == "low"', 18, "percentage"),
        ('prediction.severity > "critical"', 21, "use == or !="),
        ("prediction.severity == critical", 24, "unknown fact 'critical'"),
        ("memory_available", 1, "compare it, e.g. memory_available < 20%"),
        ("memory_available = 20%", 18, "use =="),
        ("(memory_available < 20%", 24, "expected ')'"),
        ("memory_available < 20% and", 27, "expected a fact or a value"),
        ('disk_free{path="/"} < 10%', 1, "no label 'path'"),
        ('disk_free{mount="srv"} < 10%', 1, "absolute path"),
        ("steps.disk-cleanup.done", 1, "ATTRIBUTE one of success"),
        ("steps.a.success < true", 17, "use == or !="),
        ("memory_available < 20% ; rm -rf /", 24, "unexpected character ';'"),
        ("__import__('os').system('id')", 17, "unexpected character '.'"),
        ("", 1, "empty condition"),
        ("20% < 30%", 5, "compare a fact with a value"),
        ("memory_available < swap_used", 20, "not with another fact"),
    ],
    ids=lambda value: str(value)[:24],
)
def test_bad_conditions_are_refused_with_the_column(text: str, column: int, words: str) -> None:
    with pytest.raises(ConditionError) as raised:
        validate(text)
    assert words in raised.value.reason
    assert raised.value.position + 1 == column
    assert f"at column {column}" in str(raised.value)


def test_a_step_fact_must_name_an_earlier_step() -> None:
    validate("steps.disk-cleanup.success", earlier_steps=["disk-cleanup"])
    with pytest.raises(ValueError) as raised:
        validate("steps.disk-cleanup.success", earlier_steps=["disk-clean", "drift"])
    assert "no earlier step runs playbook 'disk-cleanup'" in str(raised.value)
    assert "did you mean: disk-clean" in str(raised.value)


def test_system_facts_read_the_real_disk_and_memory(tmp_path: Path) -> None:
    facts = SystemFacts(store=None, clock=ManualClock())
    disk = facts.value(Condition.parse(f'disk_free{{mount="{tmp_path}"}} < 100%').root.fact)  # type: ignore[union-attr]
    stat = os.statvfs(tmp_path)
    assert disk == Quantity(stat.f_bavail * stat.f_frsize, stat.f_blocks * stat.f_frsize)
    memory = facts.value(Condition.parse("memory_available < 20%").root.fact)  # type: ignore[union-attr]
    assert isinstance(memory, Quantity) and 0 < memory.amount <= memory.total
    missing = Condition.parse('disk_free{mount="/no/such/mount"} < 10%')
    assert missing.evaluate(facts).observed == {'disk_free{mount="/no/such/mount"}': "unknown"}


def test_the_latest_forecast_and_recent_failures_come_from_the_store(sqlite_store: Store) -> None:
    clock = ManualClock.at("2025-12-24T10:00:00Z")
    facts = SystemFacts(store=sqlite_store, clock=clock)
    critical = Condition.parse('prediction.severity == "critical"')
    assert critical.evaluate(facts).observed == {"prediction.severity": "unknown"}
    with sqlite_store.engine.begin() as connection:
        for offset, severity in ((-7200, "critical"), (-60, "ok")):
            connection.execute(
                t.forecasts.insert().values(
                    created_at=clock.now() + offset,
                    resource="disk:/",
                    current=80,
                    trend_per_day=1,
                    horizon_at=clock.now() + 86400,
                    predicted=95,
                    severity=severity,
                    confidence=85,
                )
            )
    assert critical.evaluate(facts).holds is False  # the newest forecast says ok
    confident = Condition.parse("prediction.confidence >= 85")
    assert confident.evaluate(facts).holds is True
    assert Condition.parse("recent_failures < 1").evaluate(facts).holds is True


def test_steps_facts_follow_the_status_of_the_latest_step_of_that_playbook() -> None:
    facts = SystemFacts(
        store=None, clock=ManualClock(), steps={"db": "blocked", "disk-cleanup": "skipped"}
    )
    assert Condition.parse("steps.db.failed").evaluate(facts).holds is True
    assert Condition.parse("steps.db.success").evaluate(facts).holds is False
    assert Condition.parse("steps.disk-cleanup.skipped").evaluate(facts).holds is True
    assert Condition.parse('steps.db.status == "blocked"').evaluate(facts).holds is True
