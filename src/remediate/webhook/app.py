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
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

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


async def _read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The body, at most `limit` bytes, within `timeout` seconds (a client sending one
    byte a second is cut off; others are served meanwhile, the loop never waits on it)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async with asyncio.timeout(timeout):
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            chunks.append(chunk)
    return b"".join(chunks)


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
    max_body = runtime.settings.server.max_body_bytes
    body_timeout = runtime.settings.server.body_timeout_seconds
    writer = DecisionWriter(runtime.pipeline) if group_commit else None

    def authorized(request: Request) -> bool:
        if not token:
            return True
        given = ""
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            given = header[7:].strip()
        elif "token" in request.query_params:
            given = request.query_params["token"]
        return hmac.compare_digest(given.encode(), token.encode())

    def protected(handler: Handler) -> Handler:
        async def wrapped(request: Request) -> Response:
            if not authorized(request):
                return _error(401, "missing or wrong token", hint="Authorization: Bearer TOKEN")
            try:
                return await handler(request)
            except StoreError as error:
                return _error(503, f"store unavailable: {error}")

        return wrapped

    async def webhook(request: Request) -> Response:
        from remediate.webhook.models import WebhookPayload
        from remediate.webhook.receiver import intents
        from remediate.webhook.receiver import results as to_results

        try:
            body = await _read_body(request, max_body, body_timeout)
        except BodyTooLarge:
            return _error(413, f"body over {max_body} bytes", close=True)
        except TimeoutError:
            return _error(408, f"body not received within {body_timeout:g} s", close=True)
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            return _error(400, f"invalid JSON: {error}")
        try:
            payload = WebhookPayload.model_validate(data)
        except ValidationError as error:
            first = error.errors()[0]
            field = ".".join(str(part) for part in first["loc"]) or "(body)"
            return _error(400, f"{field}: {first['msg']}", field=field)
        wait = _wait_seconds(request)
        if wait is None:
            return _error(400, "wait: must be a number of seconds from 0 to 300", field="wait")
        items = intents(runtime.pipeline, payload)
        if writer is not None:
            decisions = await writer.decide(items)
        else:
            decisions = await run_in_threadpool(runtime.pipeline.decide_all, items)
        results = to_results(payload, decisions)
        queued = [r["execution_id"] for r in results if r["execution_id"] is not None]
        if worker is not None:
            for execution_id in queued:
                worker.submit(execution_id)
            if wait > 0 and queued:
                statuses = await run_in_threadpool(worker.wait, queued, wait)
                for result in results:
                    if result["execution_id"] in statuses:
                        result["result"] = statuses[result["execution_id"]]
        return JSONResponse(
            {"status": "processed", "alerts_received": len(payload.alerts), "results": results}
        )

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

    return Starlette(
        routes=[
            Route("/webhook", protected(webhook), methods=["POST"]),
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


def _integer(text: str, *, maximum: int = 2**63 - 1) -> int | None:
    """A positive integer that fits the store's 64-bit ids, or None."""
    if not text.isdigit() or len(text) > 19:
        return None
    value = int(text)
    return value if 1 <= value <= maximum else None


def _wait_seconds(request: Request) -> float | None:
    raw = request.query_params.get("wait", "0")
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
