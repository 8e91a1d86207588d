"""The webhook's group commit: requests that arrive together make one batch."""

from __future__ import annotations

import asyncio
from pathlib import Path

from remediate.clock import ManualClock
from remediate.pipeline.pipeline import Pipeline
from remediate.pipeline.request import Request
from remediate.pipeline.writer import DecisionWriter
from remediate.playbooks.registry import Registry
from remediate.store import Store
from tests.helpers import settings_for

OK = {"commands": [{"name": "ok", "steps": [{"name": "x", "argv": ["true"]}]}]}


def test_requests_read_in_one_round_make_one_batch(tmp_path: Path) -> None:
    """An idle writer is not woken by the first request alone: the event loop first runs
    what is ready, so the ten requests that arrived with it share its transaction."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    settings = settings_for(tmp_path, url, playbooks=OK)
    store = Store.open(url)
    pipeline = Pipeline(settings, store, Registry.from_settings(settings), clock=ManualClock(0))
    writer = DecisionWriter(pipeline)
    writer.start()

    async def arrive_together() -> list[list[object]]:
        requests = [Request("ok", source="webhook") for _ in range(10)]
        return await asyncio.gather(*(writer.decide([request]) for request in requests))

    try:
        answers = asyncio.run(arrive_together())
        assert [len(answer) for answer in answers] == [1] * 10
        assert (writer.batches, writer.items) == (1, 10)
        # A lone request later is its own batch, answered as before.
        asyncio.run(writer.decide([Request("ok", source="webhook")]))
        assert (writer.batches, writer.items) == (2, 11)
    finally:
        writer.stop()
        store.close()
