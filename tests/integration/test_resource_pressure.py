"""resource-pressure live: real podman memory figures, restarts only allow-listed services
over their budget, escalates otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from remediate.clock import ManualClock
from remediate.pipeline.pipeline import Pipeline
from remediate.pipeline.request import Request
from remediate.playbooks.registry import Registry
from remediate.store import Store
from tests.fixtures_podman import ContainerFactory, Recording, inspect
from tests.helpers import settings_for

pytestmark = pytest.mark.integration


def pipeline_for(
    tmp_path: Path,
    store: Store,
    store_url: str,
    clock: ManualClock,
    runner: Recording,
    *,
    services: list[dict[str, object]],
    allow: list[str],
    available_threshold: float,
) -> Pipeline:
    settings = settings_for(
        tmp_path,
        store_url,
        services=services,
        playbooks={
            "settings": {
                "resource-pressure": {
                    "allow_restart": allow,
                    "memory_available_percent": available_threshold,
                    "memory_psi_some_avg60": 100,
                    "stop_timeout_seconds": 1,
                }
            }
        },
    )
    return Pipeline(
        settings, store, Registry.from_settings(settings), clock=clock, process_runner=runner
    )


def test_an_allow_listed_service_over_its_budget_is_restarted(
    tmp_path: Path,
    store: Store,
    store_url: str,
    clock: ManualClock,
    container_factory: ContainerFactory,
) -> None:
    hog = container_factory(prefix="hog")
    calm = container_factory(prefix="calm")
    started = inspect(hog)["State"]["StartedAt"]
    runner = Recording()
    pipeline = pipeline_for(
        tmp_path,
        store,
        store_url,
        clock,
        runner,
        services=[
            {"name": "hog", "container": hog, "memory_budget": 1},  # any use is over 1 byte
            {"name": "calm", "container": calm, "memory_budget": "1GiB"},
        ],
        allow=["hog", "calm"],
        available_threshold=0,
    )
    _, report = pipeline.run(Request("resource-pressure"))
    assert report is not None and report.status == "success", report
    assert report.result is not None
    assert report.result.details["container_memory"]["hog"] > 1
    assert [impact.subject for impact in report.result.impacts] == ["hog"]
    assert inspect(hog)["State"]["StartedAt"] != started
    restarts = [argv for argv in runner.calls if "restart" in argv]
    assert restarts == [("podman", "restart", "-t", "1", hog)]


def test_pressure_without_an_allow_listed_candidate_escalates_with_the_evidence(
    tmp_path: Path,
    store: Store,
    store_url: str,
    clock: ManualClock,
    container_factory: ContainerFactory,
) -> None:
    hog = container_factory(prefix="hog")
    runner = Recording()
    pipeline = pipeline_for(
        tmp_path,
        store,
        store_url,
        clock,
        runner,
        services=[{"name": "hog", "container": hog, "memory_budget": 1}],
        allow=[],
        available_threshold=100,  # any reading counts as pressure
    )
    _, report = pipeline.run(Request("resource-pressure"))
    assert report is not None and report.status == "failure"
    assert "escalating" in report.summary and "not allow-listed: hog" in report.summary
    assert not [argv for argv in runner.calls if "restart" in argv]


def test_no_pressure_and_nothing_over_budget_is_a_clean_skip(
    tmp_path: Path,
    store: Store,
    store_url: str,
    clock: ManualClock,
    container_factory: ContainerFactory,
) -> None:
    calm = container_factory(prefix="calm")
    pipeline = pipeline_for(
        tmp_path,
        store,
        store_url,
        clock,
        Recording(),
        services=[{"name": "calm", "container": calm, "memory_budget": "1GiB"}],
        allow=["calm"],
        available_threshold=0,
    )
    preview = pipeline.preview(Request("resource-pressure"))
    assert preview.plan.actions == ()
    _, report = pipeline.run(Request("resource-pressure"))
    assert report is not None and report.status == "skipped"
