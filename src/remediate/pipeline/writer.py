"""Group commit for the webhook: one writer thread decides many notifications per
transaction, so durability costs one fsync per batch, not per alert.

Concurrent requests leave their items with the writer and await a future. When
the writer is idle, the first request does not wake it at once: it lets its event
loop run what is already ready first (the other requests read in the same round,
up to MAX_SETTLE_ROUNDS turns while more keep arriving), so they make one batch
with it; at c=10 a batch then holds about 10 alerts instead of about 6, and the
per-batch work (the transaction, the fsync, the first alert's checks) is shared by
more. While the writer commits a batch, the requests that arrive meanwhile wait
together and make the next batch, which it takes itself as soon as it is done.
So the event loop and the writer thread hand work to each other once per batch,
not once per request. Each batch is decided in one serialized transaction; every
request of it is answered with its own decisions at once (one wake-up of the event
loop), and only then are the batch's audit lines appended (one write). The audit
log is the store's mirror, not the record: its fsync happens when the writer is
idle and at least once a second.

A store failure fails the whole batch (each request answers 503 and Alertmanager
retries); nothing is acknowledged that was not committed.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from remediate.pipeline.pipeline import Pipeline
from remediate.pipeline.request import Decision, Note, Request

log = logging.getLogger("remediate.writer")

MAX_BATCH_ITEMS = 2000
# Turns of the event loop an idle writer waits for while the batch is still growing.
MAX_SETTLE_ROUNDS = 4
# Audit lines are fsynced once the writer has had nothing to do for IDLE_SYNC_SECONDS,
# and at least every AUDIT_SYNC_SECONDS under load.
AUDIT_SYNC_SECONDS = 1.0
IDLE_SYNC_SECONDS = 0.05


@dataclass
class _Job:
    items: Sequence[Request | Note]
    future: asyncio.Future[list[Decision]]
    loop: asyncio.AbstractEventLoop


# What a finished job answers: its decisions, or the error that failed its batch.
_Answer = tuple[asyncio.Future[list[Decision]], list[Decision] | None, BaseException | None]


class DecisionWriter:
    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self._lock = threading.Lock()
        self._pending: list[_Job] = []
        self._busy = False  # the writer holds a batch; new jobs wait in _pending
        # Event loops with a hand-over scheduled (one at a time per loop).
        self._settling: set[asyncio.AbstractEventLoop] = set()
        self._wake: queue.Queue[list[_Job] | None] = queue.Queue()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.items = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="remediate-writer", daemon=True)
        self._thread.start()

    async def decide(self, items: Sequence[Request | Note]) -> list[Decision]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Decision]] = loop.create_future()
        with self._lock:
            self._pending.append(_Job(items, future, loop))
            schedule = not self._busy and loop not in self._settling
            if schedule:
                self._settling.add(loop)
        if schedule:
            loop.call_soon(self._hand_over, loop, 1, 0)
        return await future

    def _hand_over(self, loop: asyncio.AbstractEventLoop, seen: int, rounds: int) -> None:
        """On the event loop: once the batch stops growing (or after MAX_SETTLE_ROUNDS
        turns), wake the writer with every waiting job, unless it is already busy (it
        then takes them itself after its batch)."""
        with self._lock:
            waiting = len(self._pending)
            if rounds < MAX_SETTLE_ROUNDS and (rounds == 0 or waiting > seen):
                again = True
            else:
                again = False
                self._settling.discard(loop)
                wake = not self._busy and waiting > 0
                if wake:
                    self._busy = True
                    jobs, self._pending = self._pending, []
        if again:
            loop.call_soon(self._hand_over, loop, waiting, rounds + 1)
        elif wake:
            self._wake.put(jobs)

    def _take(self) -> list[_Job] | None:
        """The jobs that arrived during the last batch, or None (and idle) if none did."""
        with self._lock:
            if not self._pending:
                self._busy = False
                return None
            size = count = 0
            for job in self._pending:
                if size >= MAX_BATCH_ITEMS:
                    break
                size += len(job.items)
                count += 1
            jobs, self._pending = self._pending[:count], self._pending[count:]
            return jobs

    def _loop(self) -> None:
        audit = self.pipeline.audit
        last_sync = time.monotonic()
        while True:
            try:
                # Unsynced audit lines: wait only a moment for work, then fsync them.
                jobs = self._wake.get(timeout=IDLE_SYNC_SECONDS if audit.unsynced else None)
            except queue.Empty:
                self._sync_audit()
                last_sync = time.monotonic()
                continue
            while jobs is not None:
                self._run(jobs)
                if time.monotonic() - last_sync >= AUDIT_SYNC_SECONDS:
                    self._sync_audit()
                    last_sync = time.monotonic()
                jobs = self._take()
            if self._stopping.is_set() and self._wake.empty():
                self._sync_audit()
                return

    def _sync_audit(self) -> None:
        try:
            self.pipeline.audit.sync()
        except OSError as error:
            log.error("could not fsync the audit log %s: %s", self.pipeline.audit.path, error)

    def _run(self, jobs: list[_Job]) -> None:
        items = [item for job in jobs for item in job.items]
        answers: list[_Answer] = []
        try:
            decisions, follow_up = self.pipeline.decide_committed(items, sync_audit=False)
        except BaseException as error:  # every waiter must be answered, whatever happened
            answers = [(job.future, None, error) for job in jobs]
            self._answer(jobs, answers)
            return
        self.batches += 1
        self.items += len(items)
        start = 0
        for job in jobs:
            answers.append((job.future, decisions[start : start + len(job.items)], None))
            start += len(job.items)
        self._answer(jobs, answers)
        # The decisions are committed and answered; the audit mirror and escalation
        # notices follow before the next batch (they never hold up the answers).
        try:
            follow_up()
        except Exception:
            log.exception("after a batch of %d decision(s)", len(items))

    @staticmethod
    def _answer(jobs: list[_Job], answers: list[_Answer]) -> None:
        """Wake each event loop once for all of its jobs in the batch."""
        by_loop: dict[asyncio.AbstractEventLoop, list[_Answer]] = {}
        for job, answer in zip(jobs, answers, strict=True):
            by_loop.setdefault(job.loop, []).append(answer)
        for loop, group in by_loop.items():
            try:
                loop.call_soon_threadsafe(_settle, group)
            except RuntimeError:  # that loop is closed: nobody is waiting any more
                log.warning("dropped %d answer(s) for a closed event loop", len(group))

    def stop(self, timeout: float = 10.0) -> None:
        """Finish what is queued, then stop."""
        if self._thread is None:
            return
        self._stopping.set()
        self._wake.put(None)
        self._thread.join(timeout)


def _settle(answers: list[_Answer]) -> None:
    for future, value, error in answers:
        if future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)  # type: ignore[arg-type]
