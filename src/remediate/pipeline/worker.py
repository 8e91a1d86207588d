"""Runs admitted executions from the store's queue, in background threads of `remediate serve`.

The webhook answers once the gate has decided; the playbook runs here. The
queue is the store itself (executions with status `queued`), so a restart
resumes whatever was accepted and not yet started, and executions queued by
another process (an approval from the CLI) are picked up by the poll.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterable

from remediate.errors import RemediateError
from remediate.pipeline.pipeline import Pipeline

log = logging.getLogger("remediate.worker")

FINISHED = frozenset({"success", "failure", "timeout", "skipped", "interrupted"})


class Worker:
    def __init__(self, pipeline: Pipeline, *, threads: int = 2, poll_seconds: float = 2.0) -> None:
        self.pipeline = pipeline
        self.threads = threads
        self.poll_seconds = poll_seconds
        self._queue: queue.Queue[int] = queue.Queue()
        self._pending: set[int] = set()
        self._lock = threading.Lock()
        self._finished = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._statuses: dict[int, str] = {}

    def start(self) -> None:
        self._threads = [
            threading.Thread(target=self._loop, name=f"remediate-worker-{n}", daemon=True)
            for n in range(self.threads)
        ]
        self._threads.append(
            threading.Thread(target=self._poll, name="remediate-worker-poll", daemon=True)
        )
        for thread in self._threads:
            thread.start()

    def submit(self, execution_id: int) -> None:
        with self._lock:
            if execution_id in self._pending:
                return
            self._pending.add(execution_id)
        self._queue.put(execution_id)

    def _poll(self) -> None:
        while not self._stopping.is_set():
            try:
                for execution_id in self.pipeline.store.queued():
                    self.submit(execution_id)
            except RemediateError as error:
                log.warning("could not read the queue: %s", error)
            self._stopping.wait(self.poll_seconds)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                execution_id = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            status = "failure"
            try:
                report = self.pipeline.execute(execution_id)
                status = report.status
            except RemediateError as error:
                # Not queued any more (another process took it), or the store failed:
                # the row keeps its state; an expired lease is swept to `interrupted`.
                log.warning("execution %s: %s", execution_id, error)
                status = "error"
            except Exception:
                log.exception("execution %s crashed the worker loop", execution_id)
                status = "error"
            with self._finished:
                self._pending.discard(execution_id)
                self._statuses[execution_id] = status
                if len(self._statuses) > 10_000:
                    self._statuses.pop(next(iter(self._statuses)))
                self._finished.notify_all()

    def wait(self, execution_ids: Iterable[int], timeout: float) -> dict[int, str]:
        """Wait up to `timeout` seconds for the executions; returns the final statuses known."""
        wanted = set(execution_ids)
        deadline = time.monotonic() + timeout
        with self._finished:
            while True:
                done = {i: self._statuses[i] for i in wanted if i in self._statuses}
                remaining = deadline - time.monotonic()
                if len(done) == len(wanted) or remaining <= 0:
                    break
                self._finished.wait(min(remaining, 0.5))
        for execution_id in wanted - set(done):
            row = self.pipeline.store.execution(execution_id)
            if row is not None and row["status"] in FINISHED:
                done[execution_id] = row["status"]
        return done

    def busy(self) -> int:
        with self._lock:
            return len(self._pending)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking work; give running executions up to `timeout` seconds to finish.

        Executions not started stay `queued` in the store and resume on the next
        start; one cut off mid-run is found by the lease sweep as `interrupted`.
        """
        self._stopping.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
