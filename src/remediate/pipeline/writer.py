"""Group commit for the webhook: one writer thread decides many notifications per
transaction, so durability costs one fsync per batch, not per alert.

Concurrent requests hand their items to the writer and await a future; the
writer takes everything queued (up to a bound), decides it all in one
serialized transaction, and answers each request with its own decisions. A
store failure fails the whole batch (each request answers 503 and Alertmanager
retries); nothing is acknowledged that was not committed.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from remediate.pipeline.pipeline import Pipeline
from remediate.pipeline.request import Decision, Note, Request

log = logging.getLogger("remediate.writer")

MAX_BATCH_ITEMS = 2000


@dataclass
class _Job:
    items: Sequence[Request | Note]
    future: asyncio.Future[list[Decision]]
    loop: asyncio.AbstractEventLoop


class DecisionWriter:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.items = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="remediate-writer", daemon=True)
        self._thread.start()

    async def decide(self, items: Sequence[Request | Note]) -> list[Decision]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Decision]] = loop.create_future()
        self._queue.put(_Job(items, future, loop))
        return await future

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs = [first]
            size = len(first.items)
            stopping = False
            while size < MAX_BATCH_ITEMS:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                jobs.append(job)
                size += len(job.items)
            self._run(jobs)
            if stopping:
                return

    def _run(self, jobs: list[_Job]) -> None:
        items = [item for job in jobs for item in job.items]
        try:
            decisions = self.pipeline.decide_all(items)
        except BaseException as error:  # every waiter must be answered, whatever happened
            for job in jobs:
                job.loop.call_soon_threadsafe(_fail, job.future, error)
            return
        self.batches += 1
        self.items += len(items)
        start = 0
        for job in jobs:
            part = decisions[start : start + len(job.items)]
            start += len(job.items)
            job.loop.call_soon_threadsafe(_succeed, job.future, part)

    def stop(self, timeout: float = 10.0) -> None:
        """Finish what is queued, then stop."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(timeout)


def _succeed(future: asyncio.Future[list[Decision]], value: list[Decision]) -> None:
    if not future.done():
        future.set_result(value)


def _fail(future: asyncio.Future[list[Decision]], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
