"""The pipeline end to end in-process: gate checks, leases, timeouts, retries, records."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from remediate.clock import ManualClock
from remediate.errors import ParameterError, UnknownPlaybookError
from remediate.pipeline.pipeline import Pipeline
from remediate.pipeline.request import Alert, Request
from remediate.playbooks.registry import Registry
from remediate.store import Store
from tests.helpers import settings_for


def step(argv: list[str], **extra: Any) -> dict[str, Any]:
    return {"name": "run", "argv": argv, **extra}


PLAYBOOKS: list[dict[str, Any]] = [
    {"name": "ok", "risk": "low", "steps": [step(["true"])]},
    {"name": "fail", "risk": "low", "steps": [step(["sh", "-c", "echo boom >&2; exit 4"])]},
    {
        "name": "echo",
        "parameters": {
            "service": {"type": "string", "pattern": "^[a-z0-9-]+$", "required": True},
            "count": {"type": "integer", "minimum": 1, "maximum": 5, "default": 1},
        },
        "target_parameter": "service",
        "steps": [step(["echo", "restart", "{service}", "x{count}"])],
    },
    {"name": "careful", "requires_confirmation": True, "steps": [step(["true"])]},
    {"name": "hang", "timeout": 0.5, "steps": [step(["sh", "-c", "sleep 300"])]},
    {
        "name": "flaky",
        "retries": {"attempts": 3, "backoff_seconds": 0.01, "jitter": False},
        "parameters": {"marker": {"type": "string", "required": True}},
        # Fails twice, then succeeds: counts attempts in a file.
        "steps": [
            step(
                [
                    "sh",
                    "-c",
                    'n=$(cat "$1" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$1"; [ $n -ge 3 ]',
                    "flaky",
                    "{marker}",
                ]
            )
        ],
    },
    {
        "name": "slow",
        "parameters": {"service": {"type": "string", "required": True}},
        "target_parameter": "service",
        "steps": [step(["sleep", "1"])],
    },
]


@pytest.fixture
def settings(tmp_path: Path, store_url: str) -> Any:
    return settings_for(tmp_path, store_url, playbooks={"commands": PLAYBOOKS})


@pytest.fixture
def pipeline(settings: Any, store: Store, clock: ManualClock) -> Pipeline:
    return Pipeline(
        settings, store, Registry.from_settings(settings), clock=clock, sleep=lambda _: None
    )


def audit_lines(pipeline: Pipeline) -> list[dict[str, Any]]:
    path = pipeline.audit.path
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_successful_run_is_recorded_in_store_and_audit_log(pipeline: Pipeline) -> None:
    decision, report = pipeline.run(Request("echo", {"service": "jellyfin", "count": "2"}))
    assert decision.action == "execute"
    assert report is not None and report.status == "success"
    assert report.result is not None and report.result.stdout == "restart jellyfin x2\n"
    [row] = pipeline.store.history()
    assert (row["status"], row["target"], row["parameters"]) == (
        "success",
        "jellyfin",
        {"service": "jellyfin", "count": "2"},
    )
    [line] = audit_lines(pipeline)
    assert line["id"] == decision.id and line["success"] is True
    assert line["stdout"] == "restart jellyfin x2\n"
    assert {
        "timestamp",
        "alert",
        "playbook",
        "parameters",
        "confidence",
        "stderr",
        "source",
        "action",
        "reason",
        "duration_s",
    } <= set(line)


def test_a_failure_keeps_the_stderr_excerpt(pipeline: Pipeline) -> None:
    _, report = pipeline.run(Request("fail"))
    assert report is not None and report.status == "failure"
    assert "exited 4" in report.summary
    assert audit_lines(pipeline)[0]["stderr"] == "boom\n"


def test_an_unknown_playbook_names_close_matches(pipeline: Pipeline) -> None:
    with pytest.raises(UnknownPlaybookError) as raised:
        pipeline.run(Request("ech"))
    assert "did you mean: echo" in raised.value.message
    assert pipeline.store.history() == []


@pytest.mark.parametrize(
    ("parameters", "named"),
    [
        ({"service": "jellyfin; rm -rf /"}, "service"),
        ({"service": "../../etc"}, "service"),
        ({"service": "-rf"}, "service"),
        ({"service": "ok", "count": "9"}, "count"),
        ({"service": "ok", "count": "many"}, "count"),
        ({"service": "ok", "colour": "red"}, "colour"),
        ({}, "service"),
    ],
    ids=["shell", "traversal", "option", "range", "type", "unknown", "missing"],
)
def test_a_bad_parameter_is_refused_by_name_before_anything_runs(
    pipeline: Pipeline, parameters: dict[str, str], named: str
) -> None:
    with pytest.raises(ParameterError) as raised:
        pipeline.run(Request("echo", parameters))
    assert raised.value.parameter == named
    assert pipeline.store.history() == []


def test_a_bad_label_from_an_automatic_trigger_is_blocked_and_recorded(
    pipeline: Pipeline,
) -> None:
    decision, report = pipeline.run(
        Request(
            "echo",
            {"service": "jellyfin; rm -rf /"},
            source="webhook",
            alert=Alert("ContainerNotRunning", {"name": "jellyfin; rm -rf /"}),
        )
    )
    assert report is None
    assert (decision.action, decision.check) == ("block", "parameters")
    assert "service" in decision.reason
    assert audit_lines(pipeline)[0]["action"] == "block"


def test_a_hanging_playbook_is_killed_at_its_timeout(pipeline: Pipeline) -> None:
    _, report = pipeline.run(Request("hang"))
    assert report is not None and report.status == "timeout"
    assert pipeline.store.history()[0]["status"] == "timeout"


def test_confirmation_is_required_unless_given(pipeline: Pipeline) -> None:
    decision, report = pipeline.run(Request("careful"))
    assert report is None and decision.action == "escalate"
    assert decision.approval_id is not None
    decision, report = pipeline.run(Request("careful", confirmed=True))
    assert report is not None and report.status == "success"


def test_low_confidence_escalates(pipeline: Pipeline) -> None:
    decision, _ = pipeline.run(
        Request("ok", source="webhook", confidence=85, alert=Alert("SystemDiskSpaceWarning"))
    )
    assert (decision.action, decision.check) == ("escalate", "confidence")
    assert "85% is below the threshold 90%" in decision.reason


def test_pause_blocks_every_trigger_until_resume_but_force_passes(
    pipeline: Pipeline, clock: ManualClock
) -> None:
    pipeline.store.set_flag("paused", {"reason": "maintenance"}, now=clock.now())
    for source in ("manual", "webhook", "schedule", "autonomous"):
        decision, _ = pipeline.run(Request("ok", source=source))  # type: ignore[arg-type]
        assert (decision.action, decision.check) == ("block", "pause")
    decision, report = pipeline.run(Request("ok", forced=True))
    assert report is not None and report.status == "success"
    assert pipeline.store.history()[0]["forced"] is True
    pipeline.store.set_flag("paused", None, now=clock.now())
    clock.advance(minutes=20)
    decision, _ = pipeline.run(Request("ok", source="schedule"))
    assert decision.action == "execute"


def test_service_overrides_block_automatic_triggers_only(pipeline: Pipeline) -> None:
    alert = Alert("ContainerNotRunning", {"name": "traefik"})
    decision, _ = pipeline.run(
        Request("echo", {"service": "traefik"}, source="webhook", alert=alert, confidence=95)
    )
    assert (decision.action, decision.check) == ("block", "service_override")
    assert decision.reason == "service traefik is in the override list"
    decision, report = pipeline.run(Request("echo", {"service": "traefik"}))
    assert report is not None and report.status == "success"


def test_a_configured_rule_limits_per_instance(
    tmp_path: Path, store: Store, store_url: str, clock: ManualClock
) -> None:
    settings = settings_for(
        tmp_path,
        store_url,
        playbooks={"commands": PLAYBOOKS},
        safety={
            "rate_limits": {
                "cooldown_minutes": 0,
                "rules": [
                    {
                        "name": "per-instance",
                        "key": ["playbook", "labels.instance"],
                        "max_executions": 1,
                    }
                ],
            },
            "idempotency": {"window_minutes": 0},
        },
    )
    pipeline = Pipeline(settings, store, Registry.from_settings(settings), clock=clock)

    def fire(instance: str) -> str:
        clock.advance(minutes=1)
        alert = Alert(f"Disk{instance}", {"instance": instance})
        decision, _ = pipeline.run(Request("ok", source="webhook", alert=alert, confidence=95))
        return decision.action

    assert [fire("a"), fire("a"), fire("b")] == ["execute", "block", "execute"]
    assert "rule per-instance" in pipeline.store.history()[1]["reason"]


def test_retries_record_every_attempt_and_count_them(pipeline: Pipeline, tmp_path: Path) -> None:
    _, report = pipeline.run(Request("flaky", {"marker": str(tmp_path / "n")}))
    assert report is not None and report.status == "success" and report.attempts == 3
    import sqlalchemy as sa

    from remediate.store.tables import executions

    with pipeline.store.reading() as connection:
        rows = connection.execute(
            sa.select(executions.c.attempt, executions.c.status).order_by(executions.c.id)
        ).all()
    assert [tuple(row) for row in rows] == [(1, "failure"), (2, "failure"), (3, "success")]


def test_every_attempt_carries_the_alert_it_answers(
    pipeline: Pipeline, tmp_path: Path, clock: ManualClock
) -> None:
    """Each run of an alert, retries included, holds the alert's fingerprint and start (ROI
    pairs the fix with the alert's resolved notification by them); a run asked for by
    hand holds none."""
    import sqlalchemy as sa

    from remediate.analytics.roi import resolved
    from remediate.analytics.window import Window
    from remediate.store.tables import executions

    start = clock.now() - 120
    alert = Alert("FlakyDown", fingerprint="c0ffee", starts_at=start)
    _, report = pipeline.run(
        Request("flaky", {"marker": str(tmp_path / "n")}, source="webhook", alert=alert)
    )
    assert report is not None and report.attempts == 3
    pipeline.run(Request("ok"))
    with pipeline.store.reading() as connection:
        rows = connection.execute(
            sa.select(
                executions.c.playbook, executions.c.fingerprint, executions.c.alert_starts_at
            ).order_by(executions.c.id)
        ).all()
    assert [tuple(row) for row in rows] == [("flaky", "c0ffee", start)] * 3 + [("ok", None, None)]
    window = Window(clock.now() - 3600, clock.now() + 3600)
    fixes = resolved(pipeline.store, window)
    assert set(fixes) == {"flaky"} and fixes["flaky"].alerts_fixed == 1


def test_the_same_fix_never_runs_twice_at_once(
    settings: Any, store_url: str, clock: ManualClock
) -> None:
    # Two pipelines on two store connections, like two processes.
    stores = [Store.open(store_url), Store.open(store_url)]
    pipelines = [
        Pipeline(settings, s, Registry.from_settings(settings), clock=clock) for s in stores
    ]
    no_limits = {"cooldown_minutes": 0}
    for p in pipelines:
        p.settings = p.settings.model_copy(
            update={
                "safety": p.settings.safety.model_copy(
                    update={
                        "rate_limits": p.settings.safety.rate_limits.model_copy(update=no_limits)
                    }
                )
            }
        )
    decisions = [p.decide(Request("slow", {"service": "db"})) for p in pipelines]
    reports: list[Any] = [None, None]

    def go(index: int) -> None:
        execution_id = decisions[index].execution_id
        assert execution_id is not None
        reports[index] = pipelines[index].execute(execution_id)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    statuses = sorted(report.status for report in reports)
    assert statuses == ["skipped", "success"]
    skipped = next(report for report in reports if report.status == "skipped")
    assert "already running" in skipped.summary
    for s in stores:
        s.close()


def test_a_running_execution_left_by_a_dead_process_becomes_interrupted(
    pipeline: Pipeline, clock: ManualClock
) -> None:
    decision = pipeline.decide(Request("ok"))
    assert decision.execution_id is not None
    pipeline.store.claim(
        decision.execution_id,
        lease_key="ok:-",
        owner="some-other-host:1234",
        now=clock.now(),
        expires_at=clock.now() + 60,
    )
    assert pipeline.store.sweep_interrupted(now=clock.now()) == []
    clock.advance(seconds=61)
    assert pipeline.store.sweep_interrupted(now=clock.now()) == [decision.execution_id]
    assert pipeline.store.history()[0]["status"] == "interrupted"
    # The lease went with it: the fix can run again.
    clock.advance(minutes=20)
    _, report = pipeline.run(Request("ok"))
    assert report is not None and report.status == "success"


def test_a_dead_holder_on_this_host_is_seen_without_waiting_for_the_lease(
    pipeline: Pipeline, clock: ManualClock
) -> None:
    import socket
    import subprocess

    process = subprocess.Popen(["true"])  # a pid that existed on this host and is gone now
    process.wait()
    dead_pid = process.pid
    decision = pipeline.decide(Request("ok"))
    assert decision.execution_id is not None
    pipeline.store.claim(
        decision.execution_id,
        lease_key="ok:-",
        owner=f"{socket.gethostname()}:{dead_pid}",
        now=clock.now(),
        expires_at=clock.now() + 3600,
    )
    assert pipeline.store.sweep_interrupted(now=clock.now()) == [decision.execution_id]


def test_a_preview_shows_the_plan_and_records_nothing(pipeline: Pipeline) -> None:
    preview = pipeline.preview(Request("echo", {"service": "jellyfin"}))
    assert preview.verdict.action == "allow"
    assert [action.argv for action in preview.plan.actions] == [
        ("echo", "restart", "jellyfin", "x1")
    ]
    assert pipeline.store.history() == []


def test_a_successful_trial_closes_the_breaker(
    pipeline: Pipeline, clock: ManualClock, tmp_path: Path
) -> None:
    for _ in range(3):
        pipeline.run(Request("fail"))
        clock.advance(minutes=15)
    clock.advance(minutes=30)
    # Swap the failing command for a working one under the same name: the fix landed.
    ok = pipeline.registry.get("ok")
    pipeline.registry._playbooks["fail"] = ok
    _, report = pipeline.run(Request("fail"))
    assert report is not None and report.status == "success"
    clock.advance(minutes=15)
    decision, _ = pipeline.run(Request("fail"))
    assert decision.action == "execute"


def test_a_request_timeout_shorter_than_the_playbooks_kills_it(pipeline: Pipeline) -> None:
    _, report = pipeline.run(Request("slow", {"service": "db"}, timeout=0.2))
    assert report is not None and report.status == "timeout"


def test_a_database_at_an_older_schema_is_migrated(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    import remediate.store.store as module
    from remediate.store.store import SCHEMA_HEAD

    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = Store.open(url, migrate=False)
    config = Config()
    config.set_main_option("script_location", str(Path(module.__file__).parent / "migrations"))
    with old.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
    assert old.schema_version() == "0001"
    old.close()
    upgraded = Store.open(url)
    assert upgraded.schema_version() == SCHEMA_HEAD
    upgraded.close()


@pytest.mark.parametrize("policy", ["escalate", "resume", "record"])
def test_an_interrupted_execution_is_escalated_resumed_or_recorded_as_configured(
    tmp_path: Path, store: Store, store_url: str, clock: ManualClock, policy: str
) -> None:
    settings = settings_for(
        tmp_path,
        store_url,
        playbooks={"commands": PLAYBOOKS},
        safety={"on_interrupted": policy},
    )
    pipeline = Pipeline(settings, store, Registry.from_settings(settings), clock=clock)
    decision = pipeline.decide(Request("ok"))
    assert decision.execution_id is not None
    store.claim(
        decision.execution_id,
        lease_key="ok:-",
        owner="elsewhere:1",
        now=clock.now(),
        expires_at=clock.now() + 10,
    )
    clock.advance(seconds=11)
    assert pipeline.recover() == [decision.execution_id]
    from remediate.pipeline import approvals

    pending = approvals.listing(store, clock.now())
    queued = store.queued()
    if policy == "escalate":
        assert [row["decision_id"] for row in pending] == [decision.id]
        assert queued == []
    elif policy == "resume":
        assert pending == []
        [again] = queued
        report = pipeline.execute(again)
        assert (report.status, report.decision_id) == ("success", decision.id)
    else:
        assert (pending, queued) == ([], [])
    assert store.execution(decision.execution_id)["status"] == "interrupted"  # type: ignore[index]


def test_one_batch_of_alike_and_different_requests_gets_each_its_own_verdict(
    pipeline: Pipeline,
) -> None:
    """A storm's batch reuses validation and verdicts between identical requests; an
    admission, a different label or a different confidence still changes the answer."""

    def webhook(service: str, confidence: float = 95, **labels: str) -> Request:
        alert = Alert("ContainerNotRunning", {"name": service, **labels})
        return Request(
            "echo", {"service": service}, source="webhook", alert=alert, confidence=confidence
        )

    decisions = pipeline.decide_all(
        [
            webhook("db", confidence=10, instance="z"),  # below the threshold
            webhook("web", instance="a"),  # admitted
            webhook("web", instance="a"),  # the same alert again
            webhook("db", confidence=10, instance="z"),  # as the first, but after an admission
            webhook("traefik", instance="b"),  # a protected service
            webhook("Bad Name!"),  # fails the parameter pattern
            webhook("Bad Name!"),
            Request("echo", {"service": "web"}, source="webhook", confidence=95),  # no alert
        ]
    )
    got = [(d.action, d.check) for d in decisions]
    assert got == [
        ("escalate", "confidence"),
        ("execute", ""),
        ("block", "idempotency"),
        ("block", "rate_limit"),  # the cooldown of echo, admitted a moment ago
        ("block", "service_override"),
        ("block", "parameters"),
        ("block", "parameters"),
        ("block", "rate_limit"),
    ]
    assert len({d.id for d in decisions}) == len(decisions)
    history = pipeline.store.history(limit=20)
    assert sorted(row["id"] for row in history) == sorted(d.id for d in decisions)
