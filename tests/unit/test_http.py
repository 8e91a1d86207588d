"""The HTTP app in-process: health and metrics against a real store."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from remediate.clock import ManualClock
from remediate.pipeline.request import Request
from remediate.runtime import Runtime
from remediate.webhook.app import create_app
from tests.helpers import settings_for


def runtime_for(tmp_path: Path, url: str, clock: ManualClock) -> Runtime:
    settings = settings_for(
        tmp_path,
        url,
        playbooks={"commands": [{"name": "ok", "steps": [{"name": "x", "argv": ["true"]}]}]},
    )
    return Runtime.build(settings, clock=clock)


def test_health_reports_the_store_pause_and_queue(tmp_path: Path, clock: ManualClock) -> None:
    runtime = runtime_for(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", clock)
    runtime.pipeline.decide(Request("ok"))  # admitted, not executed: one in the queue
    runtime.store.set_flag("paused", {"reason": "test"}, now=clock.now())
    with TestClient(create_app(runtime)) as client:
        response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "store": "ok",
        "paused": True,
        "queue_depth": 1,
        "running": 0,
        "open_breakers": [],
        "pending_approvals": 0,
    }


def test_health_is_503_when_the_store_is_unreachable(tmp_path: Path, clock: ManualClock) -> None:
    runtime = runtime_for(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", clock)
    (tmp_path / "db.sqlite").unlink()
    (tmp_path / "db.sqlite").mkdir()  # a directory where the database was: unusable
    runtime.store.close()  # drop the open connections: the next ones open the directory
    with TestClient(create_app(runtime)) as client:
        response = client.get("/health")
        metrics = client.get("/metrics")
    assert response.status_code == 503
    assert response.json()["status"] == "unhealthy"
    assert metrics.status_code == 503


def test_metrics_are_served_from_the_store(tmp_path: Path, clock: ManualClock) -> None:
    runtime = runtime_for(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", clock)
    runtime.pipeline.run(Request("ok"))
    with TestClient(create_app(runtime)) as client:
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'remediation_playbook_executions_total{playbook="ok",status="success"} 1.0' in (
        response.text
    )


def test_other_methods_get_405(tmp_path: Path, clock: ManualClock) -> None:
    runtime = runtime_for(tmp_path, f"sqlite:///{tmp_path / 'db.sqlite'}", clock)
    with TestClient(create_app(runtime)) as client:
        assert client.post("/health").status_code == 405


def test_a_late_body_is_cut_off_and_nothing_else_is_cancelled() -> None:
    """One timer watches every body being read: a body later than the timeout comes out
    as TimeoutError (between the timeout and an eighth more); a read that ended, however,
    is never cancelled afterwards, and a cancellation from elsewhere stays one."""
    import asyncio
    import time

    from remediate.webhook.app import BodyTooLarge, _BodyDeadlines, _read_body

    async def scenario() -> dict[str, object]:
        deadlines = _BodyDeadlines(0.4)
        never = asyncio.Event()

        async def silent() -> dict[str, object]:
            await never.wait()
            return {}

        async def huge() -> dict[str, object]:
            return {"type": "http.request", "body": b"x" * 100, "more_body": True}

        async def late() -> tuple[str, float]:
            started = time.monotonic()
            try:
                await _read_body(silent, None, 10, deadlines)
            except TimeoutError:
                return "timeout", time.monotonic() - started
            return "read", time.monotonic() - started

        async def too_large_then_wait() -> str:
            with pytest.raises(BodyTooLarge):
                await _read_body(huge, None, 10, deadlines)
            await asyncio.sleep(0.8)  # past the deadline: must not be cancelled now
            return "survived"

        reader = asyncio.create_task(late())
        survivor = asyncio.create_task(too_large_then_wait())
        cancelled = asyncio.create_task(_read_body(silent, None, 10, deadlines))
        await asyncio.sleep(0.1)
        cancelled.cancel()
        try:
            await cancelled
            outcome = "finished"
        except asyncio.CancelledError:
            outcome = "cancelled"
        return {
            "late": await reader,
            "survivor": await survivor,
            "cancelled": outcome,
            "left": (len(deadlines.reading), len(deadlines.expired)),
        }

    result = asyncio.run(scenario())
    status, took = result["late"]  # type: ignore[misc]
    assert status == "timeout" and 0.4 <= took < 1.5
    assert result["survivor"] == "survived"
    assert result["cancelled"] == "cancelled"
    assert result["left"] == (0, 0)


def test_a_body_deadline_keeps_a_cancellation_from_elsewhere_and_works_on_a_new_loop() -> None:
    """A cancellation from elsewhere (a shutdown) in the same step as the deadline stays
    a cancellation, as with asyncio.timeout; and a loop that closed mid-read does not
    leave the deadlines without a timer for the next loop."""
    import asyncio
    import time

    from remediate.webhook.app import _BodyDeadlines, _read_body

    async def never() -> dict[str, object]:
        await asyncio.sleep(3600)
        return {}

    async def cancelled_twice() -> str:
        deadlines = _BodyDeadlines(10)
        task = asyncio.create_task(_read_body(never, None, 10, deadlines))
        await asyncio.sleep(0.01)
        deadlines.reading[task] = 0.0  # its deadline has passed
        deadlines._look(asyncio.get_running_loop())  # the timer cancels it...
        task.cancel()  # ...and so does a shutdown, in the same step
        try:
            await task
        except asyncio.CancelledError:
            return "cancelled"
        except TimeoutError:
            return "timeout"
        return "read"

    assert asyncio.run(cancelled_twice()) == "cancelled"

    deadlines = _BodyDeadlines(0.2)

    async def abandon() -> None:
        reading = asyncio.create_task(_read_body(never, None, 10, deadlines))
        await asyncio.sleep(0.01)  # the loop closes with that read in flight
        assert not reading.done()

    async def late() -> float:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(_read_body(never, None, 10, deadlines), 5)
        return time.monotonic() - started

    asyncio.run(abandon())
    assert asyncio.run(late()) < 2  # cut off by the deadline, not by wait_for's 5 s
