"""The three seed chains against real podman, PostgreSQL and Redis, through the real pipeline.

The chains are the built-in defaults (config/defaults.py), run as shipped; only the
services they name (jellyfin, postgres-immich) are declared here, pointing at
throwaway busybox containers, and each built-in gets settings that keep it inside
this test's temporary directory.
"""
# ruff: noqa: F811 - pytest fixtures imported from tests.fixtures_* are parameters here

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from remediate.chains.executor import ChainRunner, RunReport
from remediate.clock import SystemClock
from remediate.config.models import Settings
from remediate.pipeline.pipeline import Pipeline
from remediate.playbooks.registry import Registry
from remediate.store import Store
from remediate.store import tables as t
from tests.fixtures_databases import postgres_database, redis_server  # noqa: F401
from tests.fixtures_podman import (  # noqa: F401
    ContainerFactory,
    container_factory,
    podman,
    podman_image,
)
from tests.helpers import settings_for

FAST_RESTART = {"backoff_seconds": [0, 1], "verify_timeout_seconds": 15}


def needs_builtins(*names: str) -> None:
    """Skip until the built-in playbooks a seed chain runs are installed."""
    installed = Registry.from_settings(Settings()).names()
    for name in names:
        if name not in installed:
            pytest.skip(f"needs built-in playbook {name}")


def seed_chain(name: str) -> dict[str, Any]:
    chain = next(chain for chain in Settings().chains if chain.name == name)
    return chain.model_dump(mode="json")


def runner_for(settings: Settings, store: Store) -> ChainRunner:
    clock = SystemClock()
    registry = Registry.from_settings(settings)
    pipeline = Pipeline(settings, store, registry, clock=clock)
    return ChainRunner(settings, store, registry, pipeline, clock=clock)


def statuses(report: RunReport) -> list[tuple[str, str]]:
    return [(step.playbook, step.status) for step in report.steps]


@pytest.fixture
def old_logs(tmp_path: Path) -> Path:
    """A root with three 30-day-old log files (3 x 64 KiB) and one fresh one."""
    root = tmp_path / "logs"
    root.mkdir()
    month_ago = time.time() - 30 * 86400
    for index in range(3):
        path = root / f"old-{index}.log"
        path.write_bytes(b"x" * 65536)
        os.utime(path, (month_ago, month_ago))
    (root / "fresh.log").write_bytes(b"y" * 100)
    return root


SAFETY = {"rate_limits": {"cooldown_minutes": 0, "max_executions_per_hour": 100}}


@pytest.mark.integration
def test_full_recovery_cleans_restarts_a_killed_service_and_finds_no_drift(
    tmp_path: Path,
    store: Store,
    store_url: str,
    container_factory: ContainerFactory,
    podman_image: str,
    old_logs: Path,
) -> None:
    needs_builtins(
        "disk-cleanup", "resource-pressure", "self-healing-restart", "drift-reconciliation"
    )
    container = container_factory(prefix="jellyfin")
    podman("kill", container)
    chain = seed_chain("full-recovery")
    # The shipped step names no service, but drift-reconciliation requires one (pre-flight says
    # so); defaults.py should give it `service: jellyfin`, as the restart step has.
    drift = chain["playbooks"][3]
    drift["parameters"] = drift.get("parameters") or {"service": "jellyfin"}
    settings = settings_for(
        tmp_path,
        store_url,
        safety=SAFETY,
        services=[
            {
                "name": "jellyfin",
                "container": container,
                "image": podman_image,
                "command": ["sleep", "1000"],
            }
        ],
        chains=[chain],
        playbooks={
            "settings": {
                "disk-cleanup": {
                    # Never prune this host's images or journal from a test.
                    "images": {"enabled": False},
                    "journal": {"enabled": False},
                    "paths": [{"root": str(old_logs), "pattern": "*.log", "min_age_days": 7}],
                },
                "self-healing-restart": FAST_RESTART,
            }
        },
    )
    runner = runner_for(settings, store)
    preflight = runner.preflight(runner.chain("full-recovery"), confirmed=True)
    assert preflight.errors == (), preflight.errors

    report = runner.run("full-recovery", confirmed=True)

    steps = dict(statuses(report))
    assert steps["disk-cleanup"] == "success", report.steps[0].detail
    assert sorted(path.name for path in old_logs.iterdir()) == ["fresh.log"]
    # resource-pressure runs only under memory pressure; either way the condition is recorded.
    assert steps["resource-pressure"] in ("skipped", "success", "failure")
    assert report.steps[1].detail.condition_observed
    assert steps["self-healing-restart"] == "success", report.steps[2].detail
    assert json.loads(podman("inspect", container).stdout)[0]["State"]["Running"] is True
    assert steps["drift-reconciliation"] == "success", report.steps[3].detail
    assert report.status in ("success", "failure")
    assert report.status == ("success" if steps["resource-pressure"] != "failure" else "failure")


@pytest.fixture
def bloated(postgres_database: str) -> str:
    """A table without autovacuum holding 9,000 dead rows."""
    with psycopg.connect(postgres_database, autocommit=True) as connection:
        connection.execute(
            "CREATE TABLE photos (id integer PRIMARY KEY, body text) "
            "WITH (autovacuum_enabled = false)"
        )
        connection.execute(
            "INSERT INTO photos SELECT g, repeat('x', 100) FROM generate_series(1, 10000) g"
        )
        connection.execute("DELETE FROM photos WHERE id % 10 <> 0")
        connection.execute("SELECT pg_stat_force_next_flush()")
    return postgres_database


def database_settings(
    tmp_path: Path, store_url: str, container: str, dsn: str, redis_url: str, chain: dict[str, Any]
) -> Settings:
    return settings_for(
        tmp_path,
        store_url,
        safety=SAFETY,
        services=[{"name": "postgres-immich", "container": container}],
        chains=[chain],
        playbooks={
            "settings": {
                "database-maintenance": {
                    "postgres": [{"name": "immich", "dsn": dsn}],
                    "redis": [{"name": "cache", "url": redis_url, "purge": False}],
                },
                "self-healing-restart": FAST_RESTART,
            }
        },
    )


@pytest.mark.integration
def test_database_health_vacuums_postgres_analyses_redis_then_restarts_the_database(
    tmp_path: Path,
    store: Store,
    store_url: str,
    container_factory: ContainerFactory,
    bloated: str,
    redis_server: str,
) -> None:
    needs_builtins("database-maintenance", "self-healing-restart")
    container = container_factory(prefix="pg")
    podman("kill", container)
    settings = database_settings(
        tmp_path, store_url, container, bloated, redis_server, seed_chain("database-health")
    )
    runner = runner_for(settings, store)

    report = runner.run("database-health", confirmed=True)

    assert statuses(report) == [
        ("database-maintenance", "success"),
        ("self-healing-restart", "success"),
    ], [step.detail for step in report.steps]
    assert report.status == "success"
    impacts = store.impacts_of(report.steps[0].execution_id or 0)
    assert {"kind": "rows_removed", "subject": "immich", "value": 9000.0} in impacts
    assert json.loads(podman("inspect", container).stdout)[0]["State"]["Running"] is True


@pytest.mark.integration
def test_database_health_reports_that_a_vacuum_cannot_be_undone_when_the_restart_fails(
    tmp_path: Path,
    store: Store,
    store_url: str,
    container_factory: ContainerFactory,
    bloated: str,
    redis_server: str,
) -> None:
    needs_builtins("database-maintenance", "self-healing-restart")
    container = container_factory.adopt(f"pg-missing-{os.getpid()}")  # never created
    settings = database_settings(
        tmp_path, store_url, container, bloated, redis_server, seed_chain("database-health")
    )

    report = runner_for(settings, store).run("database-health", confirmed=True)

    assert report.status == "failure"
    assert statuses(report) == [
        ("database-maintenance", "success"),
        ("self-healing-restart", "failure"),
    ]
    assert report.steps[0].detail.undone is False
    assert "could not be undone" in (report.steps[0].detail.rollback or "")


@pytest.fixture
def critical_forecast(store: Store) -> Iterator[None]:
    """A planted critical disk forecast, until the forecasting playbook writes real ones."""
    now = time.time()
    with store.engine.begin() as connection:
        connection.execute(
            t.forecasts.insert().values(
                created_at=now,
                resource="disk:/",
                current=91,
                trend_per_day=2,
                horizon_at=now + 3 * 86400,
                predicted=97,
                seconds_to_full=4 * 86400,
                severity="critical",
                confidence=88,
            )
        )
    yield


@pytest.mark.integration
def test_predictive_preemption_cleans_up_on_a_critical_forecast_then_maintains_databases(
    tmp_path: Path,
    store: Store,
    store_url: str,
    old_logs: Path,
    bloated: str,
    redis_server: str,
    critical_forecast: None,
) -> None:
    needs_builtins("predictive-maintenance", "disk-cleanup", "database-maintenance")
    settings = settings_for(
        tmp_path,
        store_url,
        safety=SAFETY,
        chains=[seed_chain("predictive-preemption")],
        playbooks={
            "settings": {
                "disk-cleanup": {
                    "images": {"enabled": False},
                    "journal": {"enabled": False},
                    "paths": [{"root": str(old_logs), "pattern": "*.log", "min_age_days": 7}],
                },
                "database-maintenance": {"postgres": [{"name": "immich", "dsn": bloated}]},
            }
        },
    )

    report = runner_for(settings, store).run("predictive-preemption", confirmed=True)

    # The condition reads the latest forecast: the one predictive-maintenance just stored
    # when it had samples to forecast from, else the planted critical one.
    with store.reading() as connection:
        latest = connection.execute(
            t.forecasts.select().order_by(t.forecasts.c.created_at.desc(), t.forecasts.c.id.desc())
        ).first()
    assert latest is not None
    critical = latest.severity == "critical"
    assert statuses(report) == [
        ("predictive-maintenance", "success"),
        ("disk-cleanup", "success" if critical else "skipped"),
        ("database-maintenance", "success"),
    ], [step.detail for step in report.steps]
    observed = report.steps[1].detail.condition_observed or ""
    assert f"prediction.severity = '{latest.severity}'" in observed
    remaining = sorted(path.name for path in old_logs.iterdir())
    assert remaining == (
        ["fresh.log"] if critical else ["fresh.log", "old-0.log", "old-1.log", "old-2.log"]
    )
