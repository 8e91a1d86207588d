"""The durable no-op: the bench's no-op app (bench/noop_app.py, Starlette on uvicorn
with uvloop and httptools) plus one thing, each body stored before the answer: one
row per notification in SQLite (WAL, synchronous=FULL), group-committed by one writer
thread, its batches formed as remediate's writer forms them.

No parsing, no validation, no gate, no decision: what `remediate serve` does beyond
this is its own per-alert work. The bench measures it beside the no-op ceiling, so
the two say how much of the gap between remediate and the ceiling is the cost of
storing each notification durably on this stack (one core, Python, an fsync before
the answer). `bare` is the same without Starlette, as remediate answers its webhook.
The store is the file named by REMEDIATE_BENCH_DB, or one in a new temporary
directory. A failed commit answers its batch 503, as remediate would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import sqlite3
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

# Event-loop turns an idle writer waits while the batch still grows (remediate's is 4).
SETTLE_ROUNDS = 4

Job = tuple[bytes, "asyncio.Future[None]", asyncio.AbstractEventLoop]


class GroupCommit:
    """One writer thread; requests wait on futures for the commit of their batch."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS received (id INTEGER PRIMARY KEY, at REAL, body BLOB)"
        )
        self.lock = threading.Lock()
        self.pending: list[Job] = []
        self.busy = False  # the writer holds a batch; new jobs wait in `pending`
        self.settling: set[asyncio.AbstractEventLoop] = set()
        self.batches = 0
        self.wake: queue.SimpleQueue[list[Job] | None] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self.run, name="durable-noop-writer", daemon=True)
        self.thread.start()

    async def store(self, body: bytes) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self.lock:
            self.pending.append((body, future, loop))
            schedule = not self.busy and loop not in self.settling
            if schedule:
                self.settling.add(loop)
        if schedule:
            loop.call_soon(self.hand_over, loop, 1, 0)
        await future

    def hand_over(self, loop: asyncio.AbstractEventLoop, seen: int, rounds: int) -> None:
        with self.lock:
            waiting = len(self.pending)
            if rounds < SETTLE_ROUNDS and (rounds == 0 or waiting > seen):
                loop.call_soon(self.hand_over, loop, waiting, rounds + 1)
                return
            self.settling.discard(loop)
            if self.busy or not waiting:
                return
            self.busy = True
            jobs, self.pending = self.pending, []
        self.wake.put(jobs)

    def run(self) -> None:
        while (jobs := self.wake.get()) is not None:
            while jobs:
                error = self.commit(jobs)
                self.batches += 1
                by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
                for _, future, loop in jobs:
                    by_loop.setdefault(loop, []).append(future)
                for loop, futures in by_loop.items():
                    # A closed loop raises RuntimeError: nobody waits there any more.
                    with contextlib.suppress(RuntimeError):
                        loop.call_soon_threadsafe(_settle, futures, error)
                with self.lock:
                    jobs, self.pending = self.pending, []
                    self.busy = bool(jobs)

    def commit(self, jobs: list[Job]) -> Exception | None:
        try:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany(
                "INSERT INTO received (at, body) VALUES (?, ?)",
                [(time.time(), body) for body, _, _ in jobs],
            )
            self.db.execute("COMMIT")
        except sqlite3.Error as error:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            return error
        return None

    def close(self) -> None:
        self.wake.put(None)
        self.thread.join(10)
        self.db.close()


def _settle(futures: list[asyncio.Future[None]], error: Exception | None) -> None:
    for future in futures:
        if not future.done():
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)


writer: GroupCommit | None = None


async def webhook(request: Request) -> JSONResponse:
    body = await request.body()
    assert writer is not None
    try:
        await writer.store(body)
    except sqlite3.Error as error:
        return JSONResponse({"error": f"store unavailable: {error}"}, status_code=503)
    return JSONResponse({"status": "processed", "alerts_received": 1, "results": []})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    global writer
    path = os.environ.get("REMEDIATE_BENCH_DB") or str(
        Path(tempfile.mkdtemp(prefix="remediate-durable-noop-")) / "received.db"
    )
    writer = GroupCommit(Path(path))
    try:
        yield
    finally:
        writer.close()
        writer = None


app = Starlette(
    routes=[Route("/webhook", webhook, methods=["POST"]), Route("/health", health)],
    lifespan=lifespan,
)

ANSWER = b'{"status":"processed","alerts_received":1,"results":[]}'


async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The same without Starlette: a bare ASGI app, as remediate answers POST /webhook
    (before Starlette's middleware and router), with the answer's bytes made once."""
    if scope["type"] == "lifespan":
        async with lifespan(app):
            await receive()  # lifespan.startup
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
        await send({"type": "lifespan.shutdown.complete"})
        return
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    status, body = 200, ANSWER
    if scope["path"] == "/webhook":
        assert writer is not None
        try:
            await writer.store(b"".join(chunks))
        except sqlite3.Error as error:
            status, body = 503, json.dumps({"error": f"store unavailable: {error}"}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
