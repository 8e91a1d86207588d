"""The durable floor: the least any receiver can do that acknowledges nothing it has not
stored. A bare ASGI app on uvicorn (uvloop, httptools) that reads the body, appends it
as one row to SQLite (WAL, synchronous=FULL) in a group commit made by one writer
thread, and answers a fixed JSON once the row's batch is committed.

No parsing, no validation, no gate, no decision: what `remediate serve` does on top of
this is its own cost. The bench measures it beside the no-op ceiling, so the figures
say how much of the gap between remediate and the ceiling any durable receiver of this
shape pays (one core, Python, an fsync before the answer). The store is the file named
by REMEDIATE_FLOOR_DB, or one in a new temporary directory.
"""

from __future__ import annotations

import asyncio
import os
import queue
import sqlite3
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ANSWER = b'{"status":"processed","alerts_received":1,"results":[]}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(ANSWER))]
# Event-loop turns an idle writer waits while the batch still grows (as remediate's).
SETTLE_ROUNDS = 4

Job = tuple[bytes, "asyncio.Future[None]", asyncio.AbstractEventLoop]


class GroupCommit:
    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS received (id INTEGER PRIMARY KEY, at REAL, body BLOB)"
        )
        self.lock = threading.Lock()
        self.pending: list[Job] = []
        self.busy = False
        self.settling = False
        self.wake: queue.SimpleQueue[list[Job]] = queue.SimpleQueue()
        threading.Thread(target=self.run, name="floor-writer", daemon=True).start()

    async def store(self, body: bytes) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self.lock:
            self.pending.append((body, future, loop))
            schedule = not self.busy and not self.settling
            self.settling = self.settling or schedule
        if schedule:
            loop.call_soon(self.hand_over, loop, 1, 0)
        await future

    def hand_over(self, loop: asyncio.AbstractEventLoop, seen: int, rounds: int) -> None:
        with self.lock:
            waiting = len(self.pending)
            if rounds < SETTLE_ROUNDS and (rounds == 0 or waiting > seen):
                loop.call_soon(self.hand_over, loop, waiting, rounds + 1)
                return
            self.settling = False
            if self.busy or not waiting:
                return
            self.busy = True
            jobs, self.pending = self.pending, []
        self.wake.put(jobs)

    def run(self) -> None:
        while True:
            jobs: list[Job] | None = self.wake.get()
            while jobs:
                now = time.time()
                self.db.execute("BEGIN IMMEDIATE")
                self.db.executemany(
                    "INSERT INTO received (at, body) VALUES (?, ?)", [(now, b) for b, _, _ in jobs]
                )
                self.db.execute("COMMIT")
                by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
                for _, future, loop in jobs:
                    by_loop.setdefault(loop, []).append(future)
                for loop, futures in by_loop.items():
                    loop.call_soon_threadsafe(_settle, futures)
                with self.lock:
                    jobs, self.pending = self.pending, []
                    self.busy = bool(jobs)


def _settle(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)


_writer: GroupCommit | None = None


def _store() -> GroupCommit:
    global _writer
    if _writer is None:
        path = os.environ.get("REMEDIATE_FLOOR_DB") or str(
            Path(tempfile.mkdtemp(prefix="remediate-floor-")) / "floor.db"
        )
        _writer = GroupCommit(Path(path))
    return _writer


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _store()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    if scope["path"] == "/webhook":
        await _store().store(b"".join(chunks))
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})
