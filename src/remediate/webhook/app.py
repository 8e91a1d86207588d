"""The HTTP side of `remediate serve`: the Alertmanager webhook, decisions, approvals,
health and metrics.

    POST /webhook                  Alertmanager v4 payload (token: Bearer or ?token=)
    GET  /decisions[/ID]           recorded decisions and their outcomes
    GET  /approvals                pending escalations
    POST /approvals/ID/approve     (or /reject)
    GET  /health                   store, pause, breakers, queue depth (503: store down)
    GET  /metrics                  Prometheus text format, derived from the store
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from remediate import jsontext
from remediate.errors import RemediateError, StoreError
from remediate.pipeline.worker import Worker
from remediate.pipeline.writer import DecisionWriter
from remediate.runtime import Runtime

CONTENT_TYPE_LATEST = "text/plain; version=0.0.4; charset=utf-8"
MAX_WAIT_SECONDS = 300.0
log = logging.getLogger("remediate.http")

Handler = Callable[[Request], Awaitable[Response]]


def _error(status: int, reason: str, *, close: bool = False, **extra: Any) -> JSONResponse:
    """A JSON error; `close` ends the connection (the rest of its body is not wanted)."""
    headers = {"Connection": "close"} if close else None
    return JSONResponse({"error": reason, **extra}, status_code=status, headers=headers)


class BodyTooLarge(Exception):
    pass


class _Refused(Exception):
    """An answer other than 200 for the webhook: status, body and whether to close."""

    def __init__(self, status: int, reason: str, *, close: bool = False, **extra: Any) -> None:
        super().__init__(reason)
        self.status = status
        self.body = {"error": reason, **extra}
        self.close = close


class _BodyDeadlines:
    """Cuts off requests whose body takes longer than `timeout` seconds: one timer for
    every request reading its body, looking every `timeout / 8` seconds, where a timer
    per request (asyncio.timeout) cost about 5% of the event loop under load.

    A request past its deadline is cancelled; `_read_body` turns that cancellation, and
    only that one, into TimeoutError. It is cut off between `timeout` and `timeout *
    1.125` seconds after it began.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.reading: dict[asyncio.Task[Any], float] = {}
        self.expired: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def begin(self, task: asyncio.Task[Any]) -> None:
        loop = task.get_loop()
        self.reading[task] = loop.time() + self.timeout
        if self._timer is None or loop is not self._loop:  # or its loop was closed
            self._loop = loop
            self._timer = loop.call_later(self.timeout / 8, self._look, loop)

    def end(self, task: asyncio.Task[Any]) -> bool:
        """Done reading; True if the task was cancelled for being late."""
        self.reading.pop(task, None)
        if task in self.expired:
            self.expired.discard(task)
            return True
        return False

    def _look(self, loop: asyncio.AbstractEventLoop) -> None:
        if loop is not self._loop:
            return
        now = loop.time()
        for task, deadline in list(self.reading.items()):
            if task.get_loop() is not loop:  # left by a loop that closed mid-read
                del self.reading[task]
            elif deadline <= now:
                del self.reading[task]
                self.expired.add(task)
                task.cancel()
        self._timer = loop.call_later(self.timeout / 8, self._look, loop) if self.reading else None


async def _read_body(
    receive: Receive, declared: bytes | None, limit: int, deadlines: _BodyDeadlines
) -> bytes:
    """The body, at most `limit` bytes, within the deadline (a client sending one byte a
    second is cut off; others are served meanwhile, the loop never waits on it)."""
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    task = asyncio.current_task()
    assert task is not None
    deadlines.begin(task)
    try:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ConnectionError("client disconnected")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
    except asyncio.CancelledError:
        # Ours alone (the count back to 0) becomes the timeout; one from elsewhere
        # (a shutdown) in the same step stays a cancellation, as with asyncio.timeout.
        if deadlines.end(task) and task.uncancel() == 0:
            raise TimeoutError from None
        raise
    finally:
        deadlines.end(task)  # whatever ended the read: never cancelled after it
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _json_body(content: Any) -> bytes:
    """The same bytes Starlette's JSONResponse writes (answers hold no floats, so
    allow_nan=False has nothing to refuse), through the faster encoder."""
    return jsontext.dumps(content).encode()


async def _send_json(send: Send, status: int, content: Any, *, close: bool = False) -> None:
    body = _json_body(content)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode("latin-1")),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class _Endpoint:
    """A bare ASGI app as a route endpoint (Starlette wraps plain functions as handlers)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class App(Starlette):
    """Starlette, with POST /webhook answered before the middleware stack and router:
    the hot path under an alert storm. Everything else goes through Starlette."""

    webhook: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.webhook is not None
            and scope["type"] == "http"
            and scope["path"] == "/webhook"
            and scope["method"] == "POST"
        ):
            await self.webhook(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(
    runtime: Runtime,
    *,
    token: str | None = None,
    worker: Worker | None = None,
    group_commit: bool = True,
) -> Starlette:
    """The app; with `worker=None` admitted executions stay queued (the store is the queue).

    With `group_commit`, concurrent notifications are decided together by one writer
    thread: one transaction and one fsync per batch.
    """
    from remediate.webhook.models import WebhookPayload
    from remediate.webhook.receiver import intents
    from remediate.webhook.receiver import results as to_results

    max_body = runtime.settings.server.max_body_bytes
    body_timeout = runtime.settings.server.body_timeout_seconds
    deadlines = _BodyDeadlines(body_timeout)
    writer = DecisionWriter(runtime.pipeline) if group_commit else None
    expected = token.encode() if token else b""

    def given_token(authorization: str, query: Mapping[str, str]) -> str:
        if authorization.lower().startswith("bearer "):
            return authorization[7:].strip()
        return query.get("token", "")

    def authorized(request: Request) -> bool:
        if not token:
            return True
        given = given_token(request.headers.get("authorization", ""), request.query_params)
        return hmac.compare_digest(given.encode(), expected)

    def protected(handler: Handler) -> Handler:
        async def wrapped(request: Request) -> Response:
            if not authorized(request):
                return _error(401, "missing or wrong token", hint="Authorization: Bearer TOKEN")
            try:
                return await handler(request)
            except StoreError as error:
                return _error(503, f"store unavailable: {error}")

        return wrapped

    async def webhook(scope: Scope, receive: Receive, send: Send) -> None:
        """POST /webhook as a bare ASGI app: the same answers as the other routes give
        (401, 400 with the field, 408, 413, 503), without a Request or Response object."""
        try:
            content = await decide_notification(scope, receive)
        except _Refused as refused:
            await _send_json(send, refused.status, refused.body, close=refused.close)
            return
        except ConnectionError:
            return  # the client went away before sending its body: nobody to answer
        await _send_json(send, 200, content)

    async def decide_notification(scope: Scope, receive: Receive) -> dict[str, Any]:
        authorization = declared = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
            elif name == b"authorization":
                authorization = value
        raw_query = scope.get("query_string", b"")
        query = (
            dict(parse_qsl(raw_query.decode("latin-1"), keep_blank_values=True))
            if raw_query
            else {}
        )
        if token:
            given = given_token((authorization or b"").decode("latin-1"), query)
            if not hmac.compare_digest(given.encode(), expected):
                raise _Refused(401, "missing or wrong token", hint="Authorization: Bearer TOKEN")
        try:
            body = await _read_body(receive, declared, max_body, deadlines)
        except BodyTooLarge:
            raise _Refused(413, f"body over {max_body} bytes", close=True) from None
        except TimeoutError:
            raise _Refused(
                408, f"body not received within {body_timeout:g} s", close=True
            ) from None
        try:
            payload = WebhookPayload.model_validate_json(body)
        except ValidationError as error:
            first = error.errors()[0]
            if first["type"] == "json_invalid":
                reason = str(first["msg"]).removeprefix("Invalid JSON: ")
                raise _Refused(400, f"invalid JSON: {reason}") from None
            field = ".".join(str(part) for part in first["loc"]) or "(body)"
            raise _Refused(400, f"{field}: {first['msg']}", field=field) from None
        wait = _wait_seconds(query.get("wait", "0"))
        if wait is None:
            raise _Refused(400, "wait: must be a number of seconds from 0 to 300", field="wait")
        items = intents(runtime.pipeline, payload)
        try:
            if writer is not None:
                decisions = await writer.decide(items)
            else:
                decisions = await run_in_threadpool(runtime.pipeline.decide_all, items)
        except StoreError as error:
            raise _Refused(503, f"store unavailable: {error}") from None
        results = to_results(payload, decisions)
        if worker is not None:
            queued = [r["execution_id"] for r in results if r["execution_id"] is not None]
            for execution_id in queued:
                worker.submit(execution_id)
            if wait > 0 and queued:
                statuses = await run_in_threadpool(worker.wait, queued, wait)
                for result in results:
                    if result["execution_id"] in statuses:
                        result["result"] = statuses[result["execution_id"]]
        return {"status": "processed", "alerts_received": len(payload.alerts), "results": results}

    async def decisions(request: Request) -> Response:
        limit = _integer(request.query_params.get("limit", "100"), maximum=1000)
        if limit is None:
            return _error(400, "limit: must be an integer from 1 to 1000", field="limit")
        rows = await run_in_threadpool(runtime.store.history, limit=limit)
        return JSONResponse(_jsonable(rows))

    async def decision(request: Request) -> Response:
        decision_id = _integer(request.path_params["id"])
        if decision_id is None:
            return _error(400, "id: must be a positive integer", field="id")
        row = await run_in_threadpool(runtime.store.decision, decision_id)
        if row is None:
            return _error(404, f"no decision {decision_id}")
        return JSONResponse(_jsonable(row))

    async def approvals(request: Request) -> Response:
        from remediate.pipeline import approvals as service

        rows = await run_in_threadpool(service.listing, runtime.store, runtime.clock.now())
        return JSONResponse(_jsonable(rows))

    async def approval(request: Request) -> Response:
        from remediate.pipeline import approvals as service

        approval_id = _integer(request.path_params["id"])
        if approval_id is None:
            return _error(400, "id: must be a positive integer", field="id")
        verb = request.path_params["verb"]
        by = request.headers.get("x-remediate-operator", "http")[:128]
        try:
            if verb == "approve":
                outcome = await run_in_threadpool(
                    service.approve, runtime.pipeline, approval_id, by=by
                )
                if outcome.execution_id is not None and worker is not None:
                    worker.submit(outcome.execution_id)
                return JSONResponse(
                    {
                        "approval_id": approval_id,
                        "status": "approved",
                        "decision_id": outcome.id,
                        "action": outcome.action,
                        "reason": outcome.reason,
                        "execution_id": outcome.execution_id,
                    }
                )
            if verb == "reject":
                await run_in_threadpool(
                    service.reject, runtime.store, approval_id, by=by, now=runtime.clock.now()
                )
                return JSONResponse({"approval_id": approval_id, "status": "rejected"})
        except StoreError:
            raise
        except RemediateError as error:
            status = 404 if "no approval" in error.message else 409
            return _error(status, error.message)
        return _error(404, f"unknown action {verb!r}: approve or reject")

    async def health(request: Request) -> Response:
        try:
            body = await run_in_threadpool(_health, runtime, worker)
        except StoreError as error:
            return JSONResponse({"status": "unhealthy", "store": str(error)}, status_code=503)
        return JSONResponse(body)

    async def metrics(request: Request) -> Response:
        from remediate.metrics import exposition

        try:
            payload = await run_in_threadpool(exposition, runtime.metrics)
        except StoreError as error:
            return Response(f"# store unavailable: {error}\n", status_code=503)
        return Response(payload, media_type=CONTENT_TYPE_LATEST)

    async def openapi(request: Request) -> Response:
        from remediate.webhook.openapi import document

        return JSONResponse(document())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if writer is not None:
            writer.start()
        if worker is not None:
            worker.start()
        try:
            yield
        finally:
            if writer is not None:
                await run_in_threadpool(writer.stop, 10.0)
            if worker is not None:
                await run_in_threadpool(worker.stop, 10.0)

    app = App(
        routes=[
            Route("/webhook", _Endpoint(webhook), methods=["POST"]),
            Route("/decisions", protected(decisions), methods=["GET"]),
            Route("/decisions/{id}", protected(decision), methods=["GET"]),
            Route("/approvals", protected(approvals), methods=["GET"]),
            Route("/approvals/{id}/{verb}", protected(approval), methods=["POST"]),
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.webhook = webhook
    return app


def _integer(text: str, *, maximum: int = 2**63 - 1) -> int | None:
    """A positive integer of at most 19 ASCII digits up to `maximum`, or None. (Ids
    past what the store's columns hold name no row: the store answers None for them.)
    `isdigit` alone also admits digits such as '²', which `int` refuses."""
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    value = int(text)
    return value if 1 <= value <= maximum else None


def _wait_seconds(raw: str) -> float | None:
    try:
        value = float(raw)
    except ValueError:
        return None
    if not 0 <= value <= MAX_WAIT_SECONDS:  # also refuses nan
        return None
    return value


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _health(runtime: Runtime, worker: Worker | None) -> dict[str, Any]:
    from remediate.status import collect_status

    runtime.store.ping()
    status = collect_status(runtime, sweep=False)
    return {
        "status": "ok",
        "store": "ok",
        "paused": bool(status["paused"]),
        "queue_depth": status["queued"],
        "running": len(status["running"]),
        "open_breakers": [
            row["playbook"] for row in status["playbooks"] if row["breaker"] == "open"
        ],
        "pending_approvals": status["pending_approvals"],
    }
